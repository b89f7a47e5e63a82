"""Building, reopening and searching a store: shapes, query order, consistency."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.datastore import Datastore, SearchResult


def test_store_contents(built_store, documents):
    store = Datastore.open(built_store)
    manifest = store.manifest
    assert len(store) == manifest.counts["chunks"] == store.embeddings.shape[0]
    assert manifest.embedder["dim"] == store.dim == 32
    assert manifest.chunking["max_tokens"] == 24  # the tokenizer's maximum length
    assert manifest.counts["documents"] == len(documents)
    assert sum(manifest.counts["domains"].values()) == len(store)
    assert set(manifest.counts["domains"]) == {d.domain for d in documents}
    norms = np.linalg.norm(np.asarray(store.embeddings, np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    texts = {d.id: d.text for d in documents}
    for i in (0, len(store) // 2, len(store) - 1):
        assert store.text(i) in texts[store.doc_id(i)]
        assert store.doc_id(i).startswith(store.domain(i))
    with pytest.raises(IndexError):
        store.text(len(store))


def test_search_returns_everything_in_query_order(built_store):
    store = Datastore.open(built_store)
    rng = np.random.default_rng(0)
    targets = rng.permutation(len(store))[:7]
    queries = np.asarray(store.embeddings[targets], np.float32)
    result = store.search(queries, k=4)
    assert isinstance(result, SearchResult) and len(result) == 7
    assert result.ids.shape == (7, 4) and result.ids.dtype == np.int64
    assert result.scores.shape == (7, 4) and result.scores.dtype == np.float32
    assert result.embeddings.shape == (7, 4, 32) and result.embeddings.dtype == np.float32
    # each query's best match is itself (duplicated chunk texts may tie at the top)
    for q, target in enumerate(targets):
        assert store.text(result.ids[q, 0]) == store.text(target)
        assert result.scores[q, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(result.scores, axis=1) <= 1e-6)  # best first
    # one query at a time gives the same rows: the batch is returned in query order
    for q in range(7):
        single = store.search(queries[q : q + 1], k=4)
        np.testing.assert_array_equal(single.ids[0], result.ids[q])
    # the returned embeddings, texts and metadata belong to the returned ids
    for q in range(7):
        for j, i in enumerate(result.ids[q]):
            np.testing.assert_array_equal(result.embeddings[q, j], store.embeddings[i])
            assert result.texts[q][j] == store.text(i)
            assert result.domains[q][j] == store.domain(i)
            assert result.doc_ids[q][j] == store.doc_id(i)
    np.testing.assert_allclose(
        result.scores, np.einsum("bd,bkd->bk", queries, result.embeddings), atol=1e-5
    )


def test_embed_and_search_text(built_store):
    store = Datastore.open(built_store)
    texts = [store.text(len(store) - 1), store.text(3)]
    vectors = store.embed(texts)
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, store.embeddings[[len(store) - 1, 3]], atol=1e-5)
    result = store.search(vectors, k=3)
    assert [result.texts[0][0], result.texts[1][0]] == texts
    single = store.search(vectors[1], k=3)  # one (d,) vector is one query
    np.testing.assert_array_equal(single.ids[0], result.ids[1])


def test_search_argument_checks(built_store):
    store = Datastore.open(built_store)
    with pytest.raises(ValueError, match="dimension 32"):
        store.search(np.zeros((2, 5), np.float32), k=3)
    with pytest.raises(ValueError, match="k must be positive"):
        store.search(np.zeros((1, 32), np.float32), k=0)
    assert store.search(np.ones((1, 32), np.float32), k=10**6).ids.shape == (1, len(store))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_pass_the_recall_check(
    tmp_path, make_docs, tiny_tokenizer, tiny_embedder, kind
):
    docs = make_docs(n_per_domain=12, words=200, seed=3)
    store = Datastore.build(
        docs,
        tmp_path / kind,
        embedder=str(tiny_embedder),
        tokenizer=str(tiny_tokenizer),
        index=kind,
        show_progress=False,
    )
    check = store.manifest.index["recall_check"]
    assert store.manifest.index["kind"] == kind
    assert check["recall"] >= 0.95, check
    assert store.embeddings.dtype == np.float16
    reopened = Datastore.open(tmp_path / kind)
    queries = np.asarray(reopened.embeddings[:5], np.float32)
    assert (reopened.search(queries, k=5).ids >= 0).all()


def test_embed_one_text_gives_one_vector(built_store):
    store = Datastore.open(built_store)
    text = store.text(2)
    one = store.embed(text)
    assert one.shape == (store.dim,)
    np.testing.assert_array_equal(one, store.embed([text])[0])
    assert store.search(one, k=1).texts == [[text]]  # a (d,) query is one query


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_query_is_refused(built_store, bad):
    store = Datastore.open(built_store)
    queries = np.ones((3, store.dim), np.float32)
    queries[1, 4] = bad
    with pytest.raises(ValueError, match=r"query rows \[1\] hold NaN or infinite values"):
        store.search(queries, k=3)
