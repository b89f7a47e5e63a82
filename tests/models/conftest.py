"""Tiny models and tokenizers made inside the tests (no network, seconds on a CPU)."""

from __future__ import annotations

import json
import random

import pytest

DOMAIN_SAMPLES = {
    "prose": "The cat sat on the mat.  It was   warm; the sun shone.\n\nNew paragraph!",
    "code": "def f(x):\n\treturn x ** 2  # square\n\nprint(f(3))\r\n",
    "math": "∑_{i=1}^{n} i = n(n+1)/2, ∫ λ dx = λx + C; 3.14159 ≈ π",
    "multilingual": "Straße, émigré, 数学, Ελληνικά, русский, 🙂🚀 and a zero\x00byte",
    "markup": '<|endoftext|> <html><b>bold</b></html> [link](http://x.y) {"k": [1, 2]}',
}


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = " ".join(DOMAIN_SAMPLES.values()).split(" ")
    return [" ".join(rng.choice(words) for _ in range(rng.randint(40, 200))) for _ in range(n)]


@pytest.fixture(scope="session")
def domain_samples() -> dict[str, str]:
    return dict(DOMAIN_SAMPLES)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    from siftlm.models.tokenizer import save_tokenizer, train_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    texts = synthetic_texts(120) + list(DOMAIN_SAMPLES.values())
    save_tokenizer(train_tokenizer(texts, vocab_size=400, model_max_length=64), [folder])
    return folder


@pytest.fixture(scope="session")
def tiny_jsonl(tmp_path_factory):
    folder = tmp_path_factory.mktemp("texts")
    for name, texts in (("train", synthetic_texts(150, 1)), ("val", synthetic_texts(10, 2))):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for text in texts:
                handle.write(json.dumps({"text": text}) + "\n")
    return folder
