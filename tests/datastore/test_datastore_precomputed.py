"""Precomputed embeddings: used when they match, and the shipped file matches a live
re-embedding of a sample of the embedded corpus."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.datastore import Datastore
from siftlm.datastore.precomputed import SHIPPED, PrecomputedEmbeddings, export_store


def test_build_uses_matching_precomputed_vectors(
    tmp_path, built_store, documents, tiny_tokenizer, tiny_embedder
):
    live = Datastore.open(built_store)
    export_store(live, tmp_path / "vectors.npz")
    cache = PrecomputedEmbeddings.load(tmp_path / "vectors.npz")
    assert len(cache) == len({live.text(i) for i in range(len(live))})
    options = dict(tokenizer=str(tiny_tokenizer), dtype="float32", show_progress=False)

    fast = Datastore.build(
        documents, tmp_path / "fast", embedder=str(tiny_embedder), precomputed=cache, **options
    )
    assert fast.manifest.build["chunks_precomputed"] == len(live)
    assert fast.manifest.build["chunks_embedded"] == 0
    np.testing.assert_allclose(fast.embeddings, live.embeddings, atol=1e-3)  # float16 in the file

    # edited documents: only the chunks whose text changed are embedded
    edited = [documents[0]._replace(text=documents[0].text + " coda"), *documents[1:]]
    partial = Datastore.build(
        edited, tmp_path / "partial", embedder=str(tiny_embedder), precomputed=cache, **options
    )
    assert 0 < partial.manifest.build["chunks_embedded"] <= 2

    # another embedder: the file is ignored
    cache.meta["revision"] = "sha256:0000"
    other = Datastore.build(
        documents, tmp_path / "other", embedder=str(tiny_embedder), precomputed=cache, **options
    )
    assert other.manifest.build["chunks_precomputed"] == 0


@pytest.mark.slow
def test_shipped_vectors_match_a_regenerated_sample():
    """A sample of the shipped file, re-embedded live with all-MiniLM-L6-v2, matches."""
    if not SHIPPED.exists():
        pytest.skip("no shipped precomputed embeddings")
    from siftlm.data import load_corpus
    from siftlm.datastore.chunking import chunk_documents, fast_tokenizer
    from siftlm.datastore.embedders import describe_spec, load_embedder
    from siftlm.datastore.ingest import SourceDocument

    cache = PrecomputedEmbeddings.load(SHIPPED)
    assert cache.matches(*describe_spec("all-MiniLM-L6-v2"))
    tokenizer = fast_tokenizer("models/house-small")
    assert cache.meta["max_tokens"] == tokenizer.model_max_length
    memory = load_corpus("memory")
    rng = np.random.default_rng(0)
    picked = [memory[i] for i in rng.choice(len(memory), size=6, replace=False)]
    documents = [SourceDocument(d.id, d.domain, d.text) for d in picked]
    chunks = chunk_documents(documents, tokenizer, cache.meta["max_tokens"])
    texts = [c.text for c in chunks]
    shipped, found = cache.lookup(texts)
    assert found.all(), (
        "the chunking of the memory split changed: run `siftlm index precompute --incremental`"
    )
    sample = rng.choice(len(texts), size=min(8, len(texts)), replace=False)
    fresh = load_embedder("all-MiniLM-L6-v2").encode([texts[i] for i in sample])
    np.testing.assert_allclose(shipped[sample], fresh, atol=2e-3)
