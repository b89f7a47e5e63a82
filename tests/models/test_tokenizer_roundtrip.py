"""Byte-level BPE: bytes in equal bytes out, on synthetic text and on every corpus domain."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from siftlm.models import load_tokenizer
from siftlm.models.loading import models_dir
from siftlm.models.tokenizer import EOS_TOKEN, round_trips


def test_tiny_tokenizer_round_trips_every_kind_of_text(tiny_tokenizer_dir, domain_samples):
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    for domain, text in domain_samples.items():
        assert round_trips(tokenizer, text), domain


def test_tiny_tokenizer_has_eos_and_pad(tiny_tokenizer_dir):
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.pad_token_id == tokenizer.eos_token_id is not None
    # unseen characters still map to bytes, never to an unknown token
    ids = tokenizer.encode("ꙮ", add_special_tokens=False)
    assert tokenizer.eos_token_id not in ids
    assert round_trips(tokenizer, "ꙮ")


def house_tokenizer_folders() -> list[Path]:
    folders = [models_dir() / name for name in ("house-small", "house-medium", "house-small-4x")]
    return [f for f in folders if (f / "tokenizer.json").is_file()]


def test_house_tokenizer_is_identical_in_every_house_model():
    folders = house_tokenizer_folders()
    if len(folders) < 2:
        pytest.skip("house tokenizer not trained yet")
    for other in folders[1:]:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            assert filecmp.cmp(folders[0] / name, other / name, shallow=False)


def test_house_tokenizer_round_trips_every_domain_of_the_corpus():
    folders = house_tokenizer_folders()
    if not folders:
        pytest.skip("house tokenizer not trained yet")
    try:
        from siftlm.data import load_corpus

        documents = [
            d for split in ("pretrain", "memory", "validation", "test") for d in load_corpus(split)
        ]
    except Exception as error:  # the corpus is another stage; absent in a partial checkout
        pytest.skip(f"corpus not available: {error}")
    tokenizer = load_tokenizer(folders[0])
    by_domain: dict[str, list] = {}
    for document in documents:
        by_domain.setdefault(document.domain, []).append(document)
    assert by_domain
    for domain, docs in by_domain.items():
        # every document of small domains, an evenly spread sample of large ones
        sample = docs[:: max(1, len(docs) // 200)]
        failures = [d.id for d in sample if not round_trips(tokenizer, d.text)]
        assert not failures, f"{domain}: {failures[:5]}"
