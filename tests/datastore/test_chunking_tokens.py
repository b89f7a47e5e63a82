"""Chunks have at most L tokens, keep their document's id and domain, and concatenate
back to the document."""

from __future__ import annotations

import pytest

from siftlm.datastore.chunking import (
    chunk_documents,
    count_tokens,
    default_max_tokens,
    fast_tokenizer,
)
from siftlm.datastore.ingest import SourceDocument


@pytest.mark.parametrize("limit", [3, 7, 24])
def test_chunks_fit_and_keep_metadata(documents, tiny_tokenizer, limit):
    tokenizer = fast_tokenizer(str(tiny_tokenizer))
    chunks = chunk_documents(documents, tokenizer, limit)
    assert max(count_tokens(tokenizer, [c.text for c in chunks])) <= limit
    assert all(c.n_tokens <= limit for c in chunks)
    by_doc: dict[str, list] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    assert set(by_doc) == {d.id for d in documents}
    for doc in documents:
        pieces = by_doc[doc.id]
        assert [c.index for c in pieces] == list(range(len(pieces)))
        assert {c.domain for c in pieces} == {doc.domain}
        assert "".join(c.text for c in pieces) == doc.text  # nothing lost, nothing added


def test_window_boundaries_follow_the_document_tokenization(tiny_tokenizer):
    tokenizer = fast_tokenizer(str(tiny_tokenizer))
    text = "love night moon heart sweet fair rose " * 20
    (doc_tokens,) = count_tokens(tokenizer, [text])
    chunks = chunk_documents([SourceDocument("d", "verse", text)], tokenizer, 10)
    assert len(chunks) == -(-doc_tokens // 10)  # ceil: windows of exactly L tokens
    assert all(c.n_tokens == 10 for c in chunks[:-1])


def test_default_length_is_the_tokenizers_maximum(tiny_tokenizer):
    tokenizer = fast_tokenizer(str(tiny_tokenizer))
    assert default_max_tokens(tokenizer) == 24
    tokenizer.model_max_length = int(1e30)
    with pytest.raises(ValueError, match="max_tokens"):
        default_max_tokens(tokenizer)


def test_empty_and_whitespace_documents_give_no_chunks(tiny_tokenizer):
    tokenizer = fast_tokenizer(str(tiny_tokenizer))
    docs = [SourceDocument("e", "x", ""), SourceDocument("w", "x", "  \n\t ")]
    assert chunk_documents(docs, tokenizer, 8) == []


def test_missing_house_tokenizer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import siftlm.defaults

    monkeypatch.setattr(siftlm.defaults, "PROJECT_ROOT", tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="house tokenizer"):
        fast_tokenizer("models/house-small")


def test_old_name_still_imports_with_a_deprecation_warning():
    import siftlm.datastore.chunking as chunking

    with pytest.warns(DeprecationWarning, match="fast_tokenizer"):
        assert chunking.load_tokenizer is chunking.fast_tokenizer
    with pytest.raises(AttributeError, match="no_such_name"):
        chunking.no_such_name  # noqa: B018
