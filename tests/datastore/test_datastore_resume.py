"""A build killed part-way (SIGKILL) resumes from its finished shards and gives the same
store as an uninterrupted build; the store it was replacing survives the crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from siftlm.datastore import Datastore
from siftlm.datastore.build import work_dir
from siftlm.datastore.embedders import load_embedder

SHARD = 16


def write_jsonl(path, docs):
    rows = ({"id": d.id, "domain": d.domain, "text": d.text} for d in docs)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# The child builds with an embedder that sleeps after each shard, so that the parent
# can kill it while it is part-way through.
CHILD = textwrap.dedent(
    """
    import sys, time
    from siftlm.datastore.build import build_store
    from siftlm.datastore.embedders import load_embedder

    source, target, embedder_path, tokenizer_path, shard = sys.argv[1:]
    inner = load_embedder(embedder_path)

    class Slow:
        name, revision, dim = inner.name, inner.revision, inner.dim

        def token_lengths(self, texts):
            return inner.token_lengths(texts)

        def encode(self, texts, batch_size=32, progress=None):
            vectors = inner.encode(texts, batch_size, progress)
            time.sleep(0.4)
            return vectors

    build_store(source, target, embedder=Slow(), tokenizer=tokenizer_path,
                shard_size=int(shard), show_progress=False)
    """
)


class Counting:
    """Wraps an embedder and counts the texts it embeds."""

    def __init__(self, inner):
        self.inner, self.embedded = inner, 0
        self.name, self.revision, self.dim = inner.name, inner.revision, inner.dim

    def token_lengths(self, texts):
        return self.inner.token_lengths(texts)

    def encode(self, texts, batch_size=32, progress=None):
        self.embedded += len(texts)
        return self.inner.encode(texts, batch_size, progress)


def _shards(target):
    work = work_dir(target)
    return sorted(work.glob("shard-*.npz")) if work.exists() else []


@pytest.mark.slow
def test_killed_build_resumes_and_equals_uninterrupted(
    tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    options = dict(tokenizer=str(tiny_tokenizer), shard_size=SHARD, show_progress=False)
    reference = Datastore.build(
        source, tmp_path / "reference", embedder=str(tiny_embedder), **options
    )

    # an older store at the target, over fewer documents
    target = tmp_path / "store"
    old = Datastore.build(documents[:3], target, embedder=str(tiny_embedder), **options)
    old_len, old_texts = len(old), [old.text(i) for i in range(len(old))]
    del old

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(source),
            str(target),
            str(tiny_embedder),
            str(tiny_tokenizer),
            str(SHARD),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # a guard against a hung child only: generous, so that a slow, busy machine passes
    deadline = time.monotonic() + 1200
    while len(_shards(target)) < 3:
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the child build made no progress"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    finished = len(_shards(target))
    total_shards = -(-len(reference) // SHARD)
    assert 3 <= finished < total_shards

    # the killed rebuild left the old store as it was
    survivor = Datastore.open(target)
    assert len(survivor) == old_len
    assert [survivor.text(i) for i in range(old_len)] == old_texts

    # rerun: finished shards are reused, only the rest is embedded
    counting = Counting(load_embedder(str(tiny_embedder)))
    resumed = Datastore.build(source, target, embedder=counting, **options)
    assert resumed.manifest.build["chunks_reused"] == finished * SHARD
    assert counting.embedded == len(reference) - finished * SHARD
    assert not work_dir(target).exists()

    # ... and the result equals the uninterrupted build
    resumed = Datastore.open(target)
    assert len(resumed) == len(reference)
    for i in range(len(reference)):
        assert (resumed.text(i), resumed.doc_id(i), resumed.domain(i)) == (
            reference.text(i),
            reference.doc_id(i),
            reference.domain(i),
        )
    np.testing.assert_allclose(
        np.asarray(resumed.embeddings, np.float32),
        np.asarray(reference.embeddings, np.float32),
        atol=2e-3,
    )
    queries = np.asarray(reference.embeddings[::7], np.float32)
    a, b = resumed.search(queries, 5), reference.search(queries, 5)
    assert a.texts == b.texts
    np.testing.assert_allclose(a.scores, b.scores, atol=2e-3)
    assert resumed.manifest.counts == reference.manifest.counts


def test_failed_rebuild_keeps_the_existing_store(
    tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    target = tmp_path / "store"
    options = dict(tokenizer=str(tiny_tokenizer), shard_size=SHARD, show_progress=False)
    first = Datastore.build(documents[:4], target, embedder=str(tiny_embedder), **options)
    before = first.manifest.files

    class Failing(Counting):
        def encode(self, texts, batch_size=32, progress=None):
            if self.embedded >= 2 * SHARD:
                raise RuntimeError("disk on fire")
            return super().encode(texts, batch_size, progress)

    with pytest.raises(RuntimeError, match="disk on fire"):
        Datastore.build(
            documents, target, embedder=Failing(load_embedder(str(tiny_embedder))), **options
        )
    again = Datastore.open(target)
    assert again.manifest.files == before
    assert len(_shards(target)) == 2  # kept for the next attempt
    assert not list(tmp_path.glob(".store.tmp-*"))


def test_an_edited_corpus_reuses_the_unchanged_chunks(
    tmp_path, documents, tiny_tokenizer, tiny_embedder
):
    """A build interrupted, then run again over a changed corpus, reuses finished
    vectors by text: only chunks it never embedded, or whose text changed, are embedded."""
    target = tmp_path / "store"
    options = dict(tokenizer=str(tiny_tokenizer), shard_size=SHARD, show_progress=False)
    inner = load_embedder(str(tiny_embedder))

    class StopsAfterTwoShards(Counting):
        def encode(self, texts, batch_size=32, progress=None):
            if self.embedded >= 2 * SHARD:
                raise RuntimeError("interrupted")
            return super().encode(texts, batch_size, progress)

    with pytest.raises(RuntimeError, match="interrupted"):
        Datastore.build(documents, target, embedder=StopsAfterTwoShards(inner), **options)
    edited = [doc._replace(text=doc.text.upper()) for doc in documents[:3]] + documents[3:]
    counting = Counting(inner)
    store = Datastore.build(edited, target, embedder=counting, **options)
    reused = store.manifest.build["chunks_reused"]
    assert 0 < reused <= 2 * SHARD
    assert counting.embedded == len(store) - reused
    fresh = Datastore.build(edited, tmp_path / "fresh", embedder=str(tiny_embedder), **options)
    np.testing.assert_allclose(
        np.asarray(store.embeddings, np.float32),
        np.asarray(fresh.embeddings, np.float32),
        atol=2e-3,
    )
