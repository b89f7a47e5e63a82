"""The committed corpus and its loader: interface, order, names, size."""

from __future__ import annotations

import dataclasses
import time

import pytest

from siftlm.data import DOMAINS, SPLITS, Document, load_corpus


def test_interface():
    assert SPLITS == ("pretrain", "memory", "validation", "test")
    assert len(DOMAINS) >= 10 and len(set(DOMAINS)) == len(DOMAINS)
    assert [field.name for field in dataclasses.fields(Document)] == [
        "id", "domain", "source", "license", "text",
    ]  # fmt: skip
    document = Document("a/1", "math", "pkg 1.0", "MIT", "text")
    with pytest.raises(dataclasses.FrozenInstanceError):
        document.text = "other"  # type: ignore[misc]


def test_every_split_loads_quickly_in_deterministic_order():
    started = time.perf_counter()
    total_bytes = 0
    for split in SPLITS:
        documents = load_corpus(split)
        assert documents, split
        assert all(isinstance(document, Document) for document in documents)
        keys = [(document.domain, document.id) for document in documents]
        assert keys == sorted(keys)
        assert {document.domain for document in documents} == set(DOMAINS)
        assert all(document.id.startswith(document.domain + "/") for document in documents)
        assert all(document.source and document.license for document in documents)
        total_bytes += sum(len(document.text.encode("utf-8")) for document in documents)
    assert time.perf_counter() - started < 30  # a few seconds in practice
    assert total_bytes >= 40e6
    assert [document.id for document in load_corpus("test")] == [
        document.id for document in load_corpus("test")
    ]


def test_domain_filter():
    documents = load_corpus("validation", domains=["math", "legal"])
    assert {document.domain for document in documents} == {"math", "legal"}
    everything = load_corpus("validation")
    assert documents == [
        document for document in everything if document.domain in ("math", "legal")
    ]


@pytest.mark.parametrize("split", ["train", "TEST", ""])
def test_bad_split_names_the_known_ones(split):
    with pytest.raises(ValueError, match="known splits: pretrain, memory, validation, test"):
        load_corpus(split)


def test_bad_domain_names_the_known_ones():
    with pytest.raises(ValueError, match="known domains: .*math"):
        load_corpus("test", domains=["maths"])
    with pytest.raises(ValueError, match="sequence of names"):
        load_corpus("test", domains="math")  # type: ignore[arg-type]


def test_missing_corpus_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="siftlm corpus build"):
        load_corpus("test", corpus_dir=tmp_path)
