"""Searching with excluded ids (held-out protocols): a Faiss ID selector at search time."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.datastore import Datastore


def _exact_allowed(store, queries, k, excluded):
    vectors = np.asarray(store.embeddings, np.float32)
    scores = queries @ vectors.T
    scores[:, excluded] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_excluded_ids_are_never_returned_and_the_rest_is_the_exact_top_k(built_store):
    store = Datastore.open(built_store)
    rng = np.random.default_rng(1)
    queries = np.asarray(store.embeddings[rng.permutation(len(store))[:5]], np.float32)
    plain = store.search(queries, k=6)
    excluded = np.unique(plain.ids[:, :3])  # the best hits of every query
    result = store.search(queries, k=6, exclude=excluded)
    assert not np.isin(result.ids, excluded).any()
    assert result.ids.shape == (5, 6)
    truth = _exact_allowed(store, queries, 6, excluded)
    vectors = np.asarray(store.embeddings, np.float32)
    for query, row, expected in zip(queries, result.ids, truth, strict=True):
        # the same scores (the same ids up to ties)
        np.testing.assert_allclose(
            np.sort(vectors[row] @ query), np.sort(vectors[expected] @ query), atol=1e-6
        )
    # metadata follow the ids
    for q in range(5):
        assert result.doc_ids[q] == [store.doc_id(i) for i in result.ids[q]]


def test_exactly_k_left_returns_all_of_them_and_fewer_is_a_clear_error(built_store):
    store = Datastore.open(built_store)
    keep = np.array([0, len(store) // 2, len(store) - 1])
    excluded = np.setdiff1d(np.arange(len(store)), keep)
    query = np.asarray(store.embeddings[5], np.float32)
    result = store.search(query, k=3, exclude=excluded)
    assert sorted(result.ids[0].tolist()) == keep.tolist()
    with pytest.raises(ValueError, match=r"only 3 of the store's .* remain .* k=4"):
        store.search(query, k=4, exclude=excluded)
    with pytest.raises(ValueError, match="outside the store"):
        store.search(query, k=2, exclude=[len(store)])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_never_return_excluded_ids(
    kind, tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    store = Datastore.build(
        documents,
        tmp_path / kind,
        embedder=str(tiny_embedder),
        tokenizer=str(tiny_tokenizer),
        index=kind,
        show_progress=False,
    )
    domain = store.domain(0)
    excluded = [i for i in range(len(store)) if store.domain(i) == domain]
    queries = np.asarray(store.embeddings[excluded[:4]], np.float32)  # queries of that domain
    k = min(10, len(store) - len(excluded))
    result = store.search(queries, k=k, exclude=excluded)
    assert (result.ids >= 0).all()
    assert not np.isin(result.ids, excluded).any()
    assert all(d != domain for row in result.domains for d in row)


def test_per_chunk_metadata_lists(built_store):
    store = Datastore.open(built_store)
    assert len(store.doc_ids) == len(store.domains) == len(store)
    assert store.doc_ids[3] == store.doc_id(3) and store.domains[3] == store.domain(3)
