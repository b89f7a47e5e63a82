"""Tiny corpus, tokenizer, memory and models for test-time training tests (CPU, ms)."""

from __future__ import annotations

import pytest
import torch

from siftlm.testing import (
    PROMPTS,
    tiny_gpt2,
    tiny_llama,
    tiny_memory,
    tiny_tokenizer,
    topic_texts,
)

MEMORY_TEXTS, MEMORY_DOMAINS = topic_texts()


@pytest.fixture()
def prompts() -> list[str]:
    return list(PROMPTS)


@pytest.fixture(scope="session")
def memory_documents() -> list[dict[str, str]]:
    """The memory's texts as documents (id, text, domain) for a real datastore."""
    return [
        {"id": str(i), "text": text, "domain": domain}
        for i, (text, domain) in enumerate(zip(MEMORY_TEXTS, MEMORY_DOMAINS, strict=True))
    ]


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer(MEMORY_TEXTS + list(PROMPTS))


@pytest.fixture()
def memory():
    return tiny_memory(MEMORY_TEXTS, MEMORY_DOMAINS)


@pytest.fixture(params=["gpt2", "llama"])
def make_model(request, tokenizer):
    """A factory of identical tiny random models (same seed each call)."""
    build = tiny_gpt2 if request.param == "gpt2" else tiny_llama
    return lambda: build(tokenizer, n_positions=64, seed=0)


def _state_of(model) -> dict[str, torch.Tensor]:
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
    return state


def _assert_untouched(model, state: dict[str, torch.Tensor]) -> None:
    now = _state_of(model)
    assert now.keys() == state.keys()
    changed = [name for name in state if not torch.equal(now[name], state[name])]
    assert not changed, f"changed: {changed}"
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not any("lora" in name for name, _ in model.named_modules())


@pytest.fixture()
def state_of():
    """Copies of every parameter and buffer (persistent or not) of a model."""
    return _state_of


@pytest.fixture()
def assert_untouched():
    """Asserts a model is bitwise the state taken by ``state_of``: every parameter and
    buffer equal, no gradient left, every parameter trainable again, no adapter left."""
    return _assert_untouched
