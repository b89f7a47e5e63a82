"""Embedding with Ray Data: the same store as a local build, also after a crash part way."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import siftlm.datastore.build as build_module
from siftlm.cli import main
from siftlm.datastore import Datastore
from siftlm.datastore.build import work_dir

SHARD = 32


def _same_store(a: Datastore, b: Datastore) -> None:
    assert len(a) == len(b)
    assert [a.text(i) for i in range(len(a))] == [b.text(i) for i in range(len(b))]
    assert [a.doc_id(i) for i in range(len(a))] == [b.doc_id(i) for i in range(len(b))]
    # vector for vector: each shard is embedded with the same encode() call as locally
    np.testing.assert_array_equal(np.asarray(a.embeddings), np.asarray(b.embeddings))
    assert a.manifest.counts == b.manifest.counts
    assert a.manifest.embedder == b.manifest.embedder


def _build(build_tiny, path, documents, ray: bool) -> Datastore:
    return build_tiny(documents, path, shard_size=SHARD, dtype="float32", ray=ray)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, documents, build_tiny):
    """The local build that every Ray build must equal (built once for the module)."""
    return _build(build_tiny, tmp_path_factory.mktemp("local") / "store", documents, ray=False)


def test_ray_build_equals_local_build(
    ray_session, tmp_path, documents, tiny_tokenizer, tiny_embedder, reference
):
    assert len(reference) > 2 * SHARD  # several shards, so several Ray rows
    source = tmp_path / "docs.jsonl"
    rows = ({"id": d.id, "domain": d.domain, "text": d.text} for d in documents)
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    argv = ["index", "build", str(source), "-o", str(tmp_path / "store"), "--ray"]
    argv += ["--embedder", str(tiny_embedder), "--tokenizer", str(tiny_tokenizer)]
    argv += ["--shard-size", str(SHARD), "--dtype", "float32", "--no-progress"]
    assert main(argv) == 0
    store = Datastore.open(tmp_path / "store")
    _same_store(store, reference)
    assert store.manifest.build["chunks_embedded"] == len(store)


def test_ray_build_killed_part_way_resumes_and_equals_local(
    ray_session, tmp_path, monkeypatch, documents, build_tiny, reference
):
    saved = []
    save = build_module._save_shard

    def crash_after_two(file, keys, vectors):
        if len(saved) == 2:
            raise KeyboardInterrupt("killed")
        save(file, keys, vectors)
        saved.append(len(vectors))

    target = tmp_path / "store"
    monkeypatch.setattr(build_module, "_save_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        _build(build_tiny, target, documents, ray=True)
    monkeypatch.undo()
    assert len(list(work_dir(target).glob("shard-*.npz"))) == 2 and not target.exists()

    store = _build(build_tiny, target, documents, ray=True)
    build = store.manifest.build
    assert build["chunks_reused"] == sum(saved)
    assert build["chunks_embedded"] == len(store) - sum(saved)
    _same_store(store, reference)


def test_ray_needs_an_embedder_spec(
    ray_session, tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    from siftlm.datastore.embedders import load_embedder

    with pytest.raises(ValueError, match="spec"):
        Datastore.build(
            documents[:2],
            tmp_path / "store",
            embedder=load_embedder(str(tiny_embedder)),
            tokenizer=str(tiny_tokenizer),
            show_progress=False,
            ray=True,
        )


def test_without_ray_nothing_imports_it():
    code = (
        "import sys, siftlm.cli, siftlm.datastore.build, siftlm.datastore.ray_embed, "
        "siftlm.bench.runner, siftlm.bench.ray_runner; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
