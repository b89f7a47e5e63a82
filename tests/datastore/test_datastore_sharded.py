"""Stores joined into one sharded store: global ids, the best k over all shards."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.cli import main
from siftlm.datastore import Datastore, StoreError
from siftlm.datastore.sharded import ShardedDatastore, open_any


@pytest.fixture(scope="module")
def shards(tmp_path_factory, documents, tiny_tokenizer, tiny_embedder):
    import faiss

    root = tmp_path_factory.mktemp("sharded")
    parts = [documents[: len(documents) // 2], documents[len(documents) // 2 :]]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one thread: the same HNSW graph on every run
    try:
        _build_parts(root, parts, tiny_tokenizer, tiny_embedder)
    finally:
        faiss.omp_set_num_threads(threads)
    return root


def _build_parts(root, parts, tiny_tokenizer, tiny_embedder) -> None:
    for i, (part, index) in enumerate(zip(parts, ("flat", "HNSW8"), strict=True)):
        Datastore.build(
            part,
            root / f"part-{i}",
            embedder=str(tiny_embedder),
            tokenizer=str(tiny_tokenizer),
            index=index,
            dtype="float32",
            recall_target=1.0,  # HNSW8's efSearch raised until its recall@10 is 1
            show_progress=False,
        )


def test_sharded_store_searches_as_one(shards):
    assert (
        main(
            [
                "index",
                "shards",
                str(shards / "all"),
                *(str(shards / p) for p in ("part-0", "part-1")),
            ]
        )
        == 0
    )
    store = open_any(shards / "all")
    assert isinstance(store, ShardedDatastore)
    parts = [Datastore.open(shards / p) for p in ("part-0", "part-1")]
    assert len(store) == sum(len(p) for p in parts)
    # global ids run through the shards in order
    assert store.text(len(parts[0])) == parts[1].text(0)
    everything = store.embeddings[np.arange(len(store))]
    np.testing.assert_array_equal(everything[len(parts[0]) :], parts[1].embeddings)

    rng = np.random.default_rng(0)
    queries = everything[rng.choice(len(store), 6, replace=False)]
    queries += rng.normal(scale=0.05, size=queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    result = store.search(queries, k=9)
    assert result.ids.shape == (6, 9)
    exact = np.sort(queries @ everything.T, axis=1)[:, ::-1][:, :9]
    np.testing.assert_allclose(result.scores, exact, atol=1e-5)  # HNSW8 tuned to recall 1
    for q in range(6):
        for j, i in enumerate(result.ids[q]):
            assert result.texts[q][j] == store.text(i)
            assert result.doc_ids[q][j] == store.doc_id(i)
            np.testing.assert_array_equal(result.embeddings[q, j], everything[i])
    assert np.all(np.diff(result.scores, axis=1) <= 0)


def test_shards_of_different_embedders_are_refused(shards):
    part = Datastore.open(shards / "part-0")
    other = Datastore.open(shards / "part-1")
    other.manifest.embedder = {**other.manifest.embedder, "name": "another-model"}
    with pytest.raises(StoreError, match="another-model"):
        ShardedDatastore([part, other])


def test_sharded_search_excludes_global_ids(shards):
    store = ShardedDatastore.open(shards / "all")
    everything = store.embeddings[np.arange(len(store))]
    queries = everything[[0, len(store) - 1]]
    first = store.search(queries, k=5)
    banned = np.unique(first.ids)  # ids in both shards
    result = store.search(queries, k=5, exclude=banned)
    assert not set(result.ids.ravel()) & set(banned.tolist())
    scores = queries @ everything.T
    scores[:, banned] = -np.inf
    exact = np.sort(scores, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(result.scores, exact, atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        store.search(queries, k=5, exclude=[len(store)])
