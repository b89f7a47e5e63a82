"""What test-time training needs from a datastore, and a small in-memory one.

``siftlm.datastore.Datastore`` satisfies ``MemoryLike``; ``ListMemory`` does too, over a
list of texts and any embedding function (exact search, for tests and small memories).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class SearchResultLike(Protocol):
    """Per query b and rank j: ``ids[b, j]`` (int64), ``scores[b, j]`` (cosine),
    ``embeddings[b, j]`` (d,) float32 normalised, ``texts[b][j]``, ``domains[b][j]``."""

    ids: Any
    scores: Any
    embeddings: Any
    texts: Sequence[Sequence[str]]
    domains: Sequence[Sequence[str]]


@runtime_checkable
class MemoryLike(Protocol):
    """A datastore of sequences: embed texts with its own embedder, search by cosine.

    ``manifest`` says what the memory was built with: an object or mapping whose
    ``embedder`` and ``tokenizer`` entries are dicts with a ``name`` (and, for a siftlm
    datastore, the tokenizer's ``checksum``); ``len()`` is the number of sequences.
    """

    manifest: Any

    def __len__(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, d) float32, L2-normalised."""
        ...

    def search(
        self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None
    ) -> SearchResultLike:
        """The k nearest sequences of each of the (B, d) queries, never one of the
        ``exclude`` ids (held-out protocols; only called with it when one is set)."""
        ...


def manifest_entry(manifest: Any, key: str) -> dict[str, Any]:
    """``manifest[key]`` as a dict (a plain string is taken as its name; absent: {})."""
    value = manifest.get(key) if isinstance(manifest, dict) else getattr(manifest, key, None)
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else {"name": str(value)}


def check_memory(
    memory: MemoryLike,
    tokenizer: Any,
    *,
    tokenizer_name: str | None = None,
    embedder: str | None = None,
) -> None:
    """Raise ValueError, naming both, when the memory was built with another tokenizer or
    embedder than the ones given.

    The tokenizer is compared by the checksum of its definition when the manifest has one
    (a siftlm datastore), and by name when ``tokenizer_name`` is given. ``embedder``
    (None: not checked) goes through the datastore's own check, which knows aliases and
    weight revisions, else is compared by name. The queries are embedded by the memory
    itself, so its embedder is always the one used.
    """
    stored = manifest_entry(memory.manifest, "tokenizer")
    stored_name = stored.get("name", "unknown")
    if tokenizer_name is not None and stored_name not in ("unknown", tokenizer_name):
        raise ValueError(
            f"the datastore was built with tokenizer {stored_name!r}, but tokenizer "
            f"{tokenizer_name!r} was given; rebuild the datastore or use its tokenizer"
        )
    if stored.get("checksum") and hasattr(tokenizer, "backend_tokenizer"):
        from siftlm.datastore.chunking import tokenizer_checksum

        given = tokenizer_checksum(tokenizer)
        if given != stored["checksum"]:
            given_name = tokenizer_name or getattr(tokenizer, "name_or_path", "") or "unnamed"
            raise ValueError(
                f"the datastore was built with tokenizer {stored_name!r} ({stored['checksum']}),"
                f" but the tokenizer given, {given_name!r}, is another ({given}); rebuild the "
                "datastore or use its tokenizer"
            )
    if embedder is None:
        return
    stored = manifest_entry(memory.manifest, "embedder")
    if "revision" in stored:  # a siftlm datastore
        from siftlm.datastore.store import check_embedder

        check_embedder(memory.manifest, embedder, str(getattr(memory, "path", "datastore")))
    elif stored.get("name") not in (None, embedder):
        raise ValueError(
            f"the datastore was built with embedder {stored['name']!r}, but embedder "
            f"{embedder!r} was given; rebuild the datastore or use its embedder"
        )


class ListSearchResult(NamedTuple):
    ids: np.ndarray  # (B, k) int64
    scores: np.ndarray  # (B, k) float32
    embeddings: np.ndarray  # (B, k, d) float32
    texts: list[list[str]]
    domains: list[list[str]]
    doc_ids: list[list[str]]


class ListMemory:
    """An in-memory datastore over ``texts`` with exact cosine search.

    ``embed_fn`` maps a list of texts to an (N, d) array; rows are L2-normalised here.
    """

    def __init__(
        self,
        texts: Sequence[str],
        embed_fn: Callable[[list[str]], np.ndarray],
        *,
        domains: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        embedder: str = "custom",
        tokenizer: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        """``embedder``, ``tokenizer``: the names recorded in the manifest; ``max_tokens``:
        the texts' chunk length in tokens, recorded as ``manifest["chunking"]`` (used by
        ``query_vectors="chunks"``; None: not recorded)."""
        if not texts:
            raise ValueError("ListMemory needs at least one text")
        self.texts = list(texts)
        self.domains = list(domains) if domains is not None else ["none"] * len(texts)
        self.doc_ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(texts))]
        if not len(self.domains) == len(self.doc_ids) == len(self.texts):
            raise ValueError("texts, domains and doc_ids must have the same length")
        self.embed_fn = embed_fn
        self.manifest: dict[str, dict[str, Any]] = {
            "embedder": {"name": embedder},
            "tokenizer": {"name": tokenizer} if tokenizer is not None else {},
        }
        if max_tokens is not None:
            self.manifest["chunking"] = {"max_tokens": int(max_tokens)}
        self.embeddings = self.embed(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self.embed_fn(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def search(
        self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None
    ) -> ListSearchResult:
        """Exact search; ``exclude``: ids never returned (ValueError if fewer than k remain)."""
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k} is out of range for a memory of {len(self)} sequences")
        queries = np.atleast_2d(np.asarray(query_embeddings, dtype=np.float32))
        scores = queries @ self.embeddings.T
        if exclude is not None:
            excluded = np.unique(np.asarray(exclude, dtype=np.int64))
            from siftlm.training.heldout import check_enough_left

            where = f"{len(self)} sequences"
            check_enough_left(excluded.size, k, len(self) - excluded.size, where)
            scores[:, excluded] = -np.inf
        # stable: equal scores keep the memory's order, so results are reproducible
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
        return ListSearchResult(
            ids=ids,
            scores=np.take_along_axis(scores, ids, axis=1),
            embeddings=self.embeddings[ids],
            texts=[[self.texts[i] for i in row] for row in ids],
            domains=[[self.domains[i] for i in row] for row in ids],
            doc_ids=[[self.doc_ids[i] for i in row] for row in ids],
        )
