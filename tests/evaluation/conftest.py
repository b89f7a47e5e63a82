"""A tiny tokenizer and tiny random models for the bits-per-byte tests."""

from __future__ import annotations

import pytest

from siftlm.testing import tiny_gpt2, tiny_llama, tiny_tokenizer

TEXTS = [
    "Bits per byte: the négative log-likelihood in nats over ln 2 times the bytes → ratio.",
    "Rolling windows score every token of a long text exactly once, in order.",
    "def score(tokens): return sum(log_probs) # a small piece of code",
]


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer(TEXTS)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return list(TEXTS)


@pytest.fixture(params=["gpt2", "llama"])
def model(request, tokenizer):
    build = tiny_gpt2 if request.param == "gpt2" else tiny_llama
    return build(tokenizer, n_positions=64, seed=0).eval()
