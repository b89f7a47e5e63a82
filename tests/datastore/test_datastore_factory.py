"""Faiss indexes by factory string, and memory-mapped indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siftlm.datastore import Datastore
from siftlm.datastore.build import work_dir
from siftlm.datastore.factory import new_index, search_knob, set_knob
from siftlm.datastore.index import tune_recall


def _mapped(path: Path) -> bool:
    return str(path) in Path("/proc/self/maps").read_text()


@pytest.mark.parametrize("spec", ["HNSW8", "IVF4,PQ4x4np", "OPQ4,IVF4,Flat"])
def test_factory_string_store_opens_with_its_measured_recall(tmp_path, make_docs, build_tiny, spec):
    docs = make_docs(n_per_domain=12, words=200, seed=3)
    path = tmp_path / "store"
    built = build_tiny(docs, path, index=spec, dtype="float32", recall_target=0.9)
    index = built.manifest.index
    assert index["kind"] == spec
    check = index["recall_check"]
    knob = search_knob(built._index)
    assert knob is not None and check[knob.name] == knob.value
    del built

    for mmap in (False, True):
        store = Datastore.open(path, mmap=mmap)
        if mmap:
            assert _mapped(path / "index.faiss")  # pages of the file, not a copy in memory
        # the saved knob is the tuned one, and gives the recorded recall again
        assert search_knob(store._index).value == check[knob.name]
        again = tune_recall(store._index, np.asarray(store.embeddings), target=0.0)
        assert again.recall == pytest.approx(check["recall"], abs=1e-4)
        queries = np.asarray(store.embeddings[:6], np.float32)
        result = store.search(queries, k=5)
        assert result.ids.shape == (6, 5) and (result.ids >= 0).all()
        if spec == "HNSW8":  # full vectors: a stored vector finds itself
            assert (result.scores[:, 0] > 0.999).all()
            raw_scores, raw_ids = store._index.search(queries, 5)  # not re-scored: bitwise
            np.testing.assert_array_equal(result.scores, raw_scores)
            np.testing.assert_array_equal(result.ids, raw_ids)
        # excluded ids never come back, and the tuned knob is kept (through OPQ too)
        banned = np.unique(result.ids)
        kept = store.search(queries, k=5, exclude=banned)
        assert not set(kept.ids.ravel()) & set(banned.tolist())
        assert (kept.ids >= 0).all()


def test_memory_mapped_flat_index_searches_like_a_loaded_one(built_store):
    loaded = Datastore.open(built_store)
    mapped = Datastore.open(built_store, mmap=True)
    assert _mapped(built_store / "index.faiss")
    queries = np.asarray(loaded.embeddings[::9], np.float32)
    a, b = loaded.search(queries, 7), mapped.search(queries, 7)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_bad_factory_string_fails_before_embedding(tmp_path, documents, tiny_tokenizer):
    with pytest.raises(ValueError, match="IVF-oops"):
        Datastore.build(
            documents,
            tmp_path / "store",
            embedder="/no/such/embedder",  # never loaded: the string is checked first
            tokenizer=str(tiny_tokenizer),
            index="IVF-oops",
            show_progress=False,
        )
    assert not work_dir(tmp_path / "store").exists()


def test_too_many_lists_for_the_store_is_a_clear_error(
    tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    with pytest.raises(ValueError, match="inverted lists"):
        Datastore.build(
            documents,
            tmp_path / "store",
            embedder=str(tiny_embedder),
            tokenizer=str(tiny_tokenizer),
            index="IVF100000,Flat",
            show_progress=False,
        )


def test_knob_is_found_through_wrappers():
    for spec, name in [("OPQ4,IVF8,PQ4", "nprobe"), ("PCA16,HNSW8", "efSearch"), ("Flat", None)]:
        index = new_index(spec, 32)
        knob = search_knob(index)
        assert (knob and knob.name) == name
        if knob is not None:
            set_knob(index, 3)
            assert search_knob(index).value == 3
