"""Multi-vector queries (``TTTConfig.query_vectors="chunks"``): a long query text as the
set of its chunks.

An embedder sees only the start of a long text (all-MiniLM-L6-v2: 256 wordpieces). With
"chunks" the query text is cut into consecutive pieces of at most L LM tokens, exactly as
the datastore cuts documents (``siftlm.datastore.chunking``; L is the memory's chunk
length unless ``target_tokens`` says otherwise), and every piece is embedded by the
memory: m targets Q = (q_1, ..., q_m), (m, d).

Candidates for the set: each target retrieves its ``k`` nearest sequences (one batched
search, with the held-out exclusions), and of their union the ``k`` distinct sequences
with the largest

    s(x) = max_j cos(x, q_j)

are kept, best first (ties: first retrieved first). The union always holds the memory's
exact top k by s: a sequence whose best target is j and that beats all but fewer than k
sequences on s beats them on cos(., q_j) as well, so it is in target j's top k. The
candidates' ``score`` is s(x).

The selection then gets the (1, m, d) query (``siftlm.select``): SIFT minimises the sum
of the targets' posterior variances Σ_j σ²_n(q_j); nn, mmr and hull use the targets'
mean. One piece (m = 1) takes the single-vector path unchanged.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import numpy as np

from siftlm.training.memory import MemoryLike, manifest_entry


class TargetHits(NamedTuple):
    """The candidates of a set of targets, as one query's search result (B = 1):
    ``ids`` (1, k) int64, ``scores`` (1, k) float32 max-cosine over the targets,
    ``embeddings`` (1, k, d) float32; ``texts``, ``domains``, ``doc_ids``: 1 list of k
    (``doc_ids`` None when the memory gives none)."""

    ids: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray
    texts: list[list[str]]
    domains: list[list[str]]
    doc_ids: list[list[str]] | None


def target_length(memory: MemoryLike, target_tokens: int | None) -> int:
    """LM tokens per target: ``target_tokens``, else the memory's chunk length (its
    manifest's ``chunking.max_tokens``); ValueError when neither says."""
    if target_tokens is not None:
        return int(target_tokens)
    length = manifest_entry(memory.manifest, "chunking").get("max_tokens")
    if length is None:
        raise ValueError(
            f"query_vectors='chunks': the memory ({type(memory).__name__}) records no chunk "
            "length (manifest 'chunking': {'max_tokens': L}); pass target_tokens"
        )
    return int(length)


def split_query(
    text: str, tokenizer: Any, max_tokens: int, max_targets: int | None = None
) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``max_tokens`` tokens of
    ``tokenizer`` (a fast tokenizer) by the datastore's chunking, whitespace-only pieces
    dropped; at most ``max_targets`` of them, evenly spaced (indices
    round(linspace(0, m - 1, max_targets)): the first, the last and between), in order.
    A text of at most ``max_tokens`` tokens is one piece: the text itself."""
    from siftlm.datastore.chunking import chunk_documents, fast_tokenizer
    from siftlm.datastore.ingest import SourceDocument

    fast = fast_tokenizer(tokenizer)  # ValueError for a slow tokenizer
    chunks = chunk_documents([SourceDocument("query", "query", text)], fast, max_tokens)
    pieces = [chunk.text for chunk in chunks]
    if not pieces:
        raise ValueError("the query text has no tokens to embed")
    if max_targets is not None and len(pieces) > max_targets:
        keep = np.linspace(0, len(pieces) - 1, max_targets).round().astype(int)
        pieces = [pieces[i] for i in keep]
    return pieces


def embed_targets(text: str, memory: MemoryLike, tokenizer: Any, config: Any) -> np.ndarray:
    """(m, d) float32 targets of ``text`` under ``config`` (a ``TTTConfig`` with
    ``query_vectors="chunks"``), embedded by the memory."""
    length = target_length(memory, config.target_tokens)
    pieces = split_query(text, tokenizer, length, config.max_targets)
    return np.asarray(memory.embed(pieces), dtype=np.float32).reshape(len(pieces), -1)


def retrieve(
    memory: MemoryLike, targets: np.ndarray, k: int, exclude: Collection[int] | None
) -> Any:
    """The ``k`` candidates of the (m, d) ``targets``: the memory's own search result for
    m = 1, else the union rule of the module docstring as ``TargetHits``. ``exclude``:
    ids no target may retrieve (None: the search is called without it)."""
    if exclude is None:
        hits = memory.search(targets, k)
    else:
        hits = memory.search(targets, k, exclude=exclude)
    if len(targets) == 1:
        return hits
    return merge_hits(hits, targets, k)


def merge_hits(hits: Any, targets: np.ndarray, k: int) -> TargetHits:
    """The ``k`` distinct ids of the m rows of ``hits`` with the largest max-cosine over
    ``targets`` (m, d), best first; equal scores keep the order of first retrieval
    (target by target, rank by rank)."""
    ids = np.asarray(hits.ids, dtype=np.int64)
    m, per_target = ids.shape
    vectors = np.asarray(hits.embeddings, dtype=np.float32).reshape(m * per_target, -1)
    unique, first = np.unique(ids.ravel(), return_index=True)
    if unique.size < k:
        raise ValueError(f"the targets' searches returned {unique.size} distinct ids, not k={k}")
    scores = (vectors[first] @ np.asarray(targets, dtype=np.float32).T).max(axis=1)
    order = np.lexsort((first, -scores))[:k]  # by score, best first; then first seen
    positions = first[order]
    rows, cols = np.divmod(positions, per_target)
    doc_ids = getattr(hits, "doc_ids", None)

    def column(values) -> list[list[str]]:
        return [[values[r][c] for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]]

    return TargetHits(
        ids=unique[order][None, :],
        scores=scores[order].astype(np.float32)[None, :],
        embeddings=vectors[positions][None, :, :],
        texts=column(hits.texts),
        domains=column(hits.domains),
        doc_ids=column(doc_ids) if doc_ids is not None else None,
    )
