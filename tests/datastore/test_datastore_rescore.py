"""Exact scores from lossy (PQ/SQ) indexes: candidates re-scored from the stored vectors."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from siftlm.datastore import Datastore
from siftlm.datastore.factory import is_lossy, new_index


@pytest.mark.parametrize(
    ("spec", "lossy"),
    [
        ("Flat", False),
        ("HNSW32", False),
        ("IVF4,Flat", False),
        ("IVF4_HNSW8,Flat", False),
        ("IVF4,PQ4,RFlat", False),
        ("IDMap,Flat", False),
        ("PQ4", True),
        ("SQ8", True),
        ("IVF4,PQ4x4np", True),
        ("OPQ4,IVF4,PQ4", True),
        ("HNSW8_PQ4", True),
        ("IVF4,SQfp16", True),
        ("PCA8,Flat", True),
        ("IVF4,PQ4,Refine(SQ8)", True),
    ],
)
def test_lossy_indexes_are_recognised(spec, lossy):
    assert is_lossy(new_index(spec, 32)) is lossy


@pytest.fixture(scope="module", params=[("IVF4,PQ4x4np", "float32"), ("OPQ4,IVF4,PQ4", "float16")])
def pq_store(request, tmp_path_factory, make_docs, build_tiny) -> Datastore:
    spec, dtype = request.param
    path = tmp_path_factory.mktemp("pq") / "store"
    docs = make_docs(n_per_domain=12, words=200, seed=3)
    build_tiny(docs, path, index=spec, dtype=dtype, recall_target=0.5)
    return Datastore.open(path)


def _queries(store, n: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(store), size=n, replace=False)
    queries = np.asarray(store.embeddings[rows], np.float32)
    queries += rng.normal(scale=0.3, size=queries.shape).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def _exact(result, queries: np.ndarray) -> np.ndarray:
    return np.einsum("bkd,bd->bk", result.embeddings.astype(np.float64), queries)


def test_lossy_store_returns_exact_sorted_scores_of_the_same_candidates(pq_store):
    store = pq_store
    assert is_lossy(store._index)
    queries = _queries(store)
    result = store.search(queries, k=10)
    np.testing.assert_allclose(result.scores, _exact(result, queries), rtol=0, atol=1e-6)
    assert (np.diff(result.scores, axis=1) <= 0).all()  # best first
    # the candidates (the recall) are the index's own; only scores and order change
    raw_scores, raw_ids = store._index.search(queries, 10)
    assert [set(row) for row in result.ids.tolist()] == [set(row) for row in raw_ids.tolist()]
    # and the index's own scores are approximate, so the re-scoring was needed
    stored = np.asarray(store.embeddings[raw_ids.ravel()], np.float64).reshape(8, 10, -1)
    raw_exact = np.einsum("bkd,bd->bk", stored, queries)
    assert np.abs(raw_exact - raw_scores).max() > 1e-3
    # with exclusion too
    banned = np.unique(result.ids[:, :3])
    kept = store.search(queries, k=10, exclude=banned)
    assert not set(kept.ids.ravel().tolist()) & set(banned.tolist())
    np.testing.assert_allclose(kept.scores, _exact(kept, queries), rtol=0, atol=1e-6)
    assert (np.diff(kept.scores, axis=1) <= 0).all()


def test_lossy_store_returns_the_stored_vectors_not_reconstructions(pq_store):
    store = pq_store
    result = store.search(_queries(store, seed=1), k=10)
    ids = result.ids.ravel()
    stored = np.asarray(store.embeddings[ids], np.float32)
    np.testing.assert_array_equal(result.embeddings.reshape(len(ids), -1), stored)
    reconstructed = store._index.sa_decode(store._index.sa_encode(stored))
    assert np.abs(reconstructed - stored).max() > 1e-2  # so the check above can tell them apart


def test_exact_indexes_are_not_rescored(built_store):
    store = Datastore.open(built_store)
    assert not is_lossy(store._index)
    queries = _queries(store, n=6)
    result = store.search(queries, k=7)
    scores, ids = store._index.search(queries, 7)
    np.testing.assert_array_equal(result.ids, ids)
    np.testing.assert_array_equal(result.scores, scores)  # bitwise: Faiss's own scores


def test_sift_selects_from_the_stored_vectors(pq_store, tiny_tokenizer, monkeypatch):
    from transformers import AutoTokenizer

    import siftlm.selection
    from siftlm.training.adaptation import select_for_prompt
    from siftlm.training.config import TTTConfig

    seen = {}
    real_select = siftlm.selection.select

    def spy(query, candidates, *args, **kwargs):
        seen["candidates"] = np.array(candidates)
        return real_select(query, candidates, *args, **kwargs)

    @contextmanager
    def stage(timings, name):
        yield

    monkeypatch.setattr(siftlm.selection, "select", spy)
    config = TTTConfig(method="sift", k=12, n=4)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    prompt = pq_store.text(5)
    adaptation = select_for_prompt(prompt, pq_store, tokenizer, config, exclude=None, stage=stage)
    hits = pq_store.search(pq_store.embed([prompt]), 12)
    expected = np.asarray(pq_store.embeddings[hits.ids[0]], np.float32)
    np.testing.assert_array_equal(seen["candidates"], expected)
    for item in adaptation.memory:  # the recorded scores are the exact cosines
        exact = float(np.asarray(pq_store.embeddings[item.id], np.float64) @ pq_store.embed(prompt))
        assert item.score == pytest.approx(exact, abs=1e-6)
