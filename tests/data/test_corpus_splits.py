"""The committed splits: disjoint, no exact copies of evaluation documents, sizes."""

from __future__ import annotations

from collections import Counter

import pytest

from siftlm.data import DOMAINS, SPLITS, load_corpus, text_key
from siftlm.data.build import EVAL_DOCS_PER_DOMAIN, EVAL_MAX_CHARS, EVAL_MIN_CHARS


@pytest.fixture(scope="module")
def splits():
    return {split: load_corpus(split) for split in SPLITS}


def test_ids_unique_and_splits_disjoint(splits):
    ids = [document.id for split in SPLITS for document in splits[split]]
    assert len(ids) == len(set(ids))


def test_no_exact_copy_of_evaluation_documents_in_training_splits(splits):
    training = {text_key(d.text) for split in ("pretrain", "memory") for d in splits[split]}
    for split in ("validation", "test"):
        for document in splits[split]:
            assert text_key(document.text) not in training, document.id
    evaluation = [text_key(d.text) for split in ("validation", "test") for d in splits[split]]
    assert len(evaluation) == len(set(evaluation))


def test_text_key_ignores_whitespace_only():
    assert text_key("a  b\n\nc ") == text_key("a b c")
    assert text_key("a b c") != text_key("a b C")


def test_duplication_is_kept_in_training_splits(splits):
    # license texts are copied across many packages: real corpora look like that
    keys = Counter(text_key(d.text) for split in ("pretrain", "memory") for d in splits[split])
    assert sum(count for count in keys.values() if count > 1) > 50


def test_evaluation_documents_per_domain_and_length(splits):
    for split in ("validation", "test"):
        per_domain = Counter(document.domain for document in splits[split])
        assert per_domain == dict.fromkeys(DOMAINS, EVAL_DOCS_PER_DOMAIN)
        for document in splits[split]:
            assert EVAL_MIN_CHARS <= len(document.text) <= EVAL_MAX_CHARS


def test_pretrain_and_memory_about_half_each(splits):
    pretrain = Counter(document.domain for document in splits["pretrain"])
    memory = Counter(document.domain for document in splits["memory"])
    for domain in DOMAINS:
        assert abs(pretrain[domain] - memory[domain]) <= 1, domain


def test_document_sizes(splits):
    for split in SPLITS:
        for document in splits[split]:
            assert 200 <= len(document.text) <= 20_000 + 200, document.id
