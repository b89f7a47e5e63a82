"""Duplication injected into a memory, without touching it: the duplication ablation.

``DuplicatedMemory(memory, rate, kind)`` adds one copy (``copies`` for exact copies) of
every sequence in a seeded random subset (each sequence with probability ``rate``) and
searches the memory and an exact in-memory index over the copies, merging the two result
lists by score:

- ``kind="exact"``: the copy is the sequence itself (same text, same stored embedding), so
  it ties with its original and ranks right after it.
- ``kind="near"``: the copy is the sequence with ``near_fraction`` (10 %) of its words,
  chosen at random, replaced by random words of another random sequence; it is embedded
  with the memory's own embedder (``memory.embed``). That costs time: the embeddings are
  computed on the first search and cached in ``cache`` (an ``.npz``) when one is given.

Copy j (copies in order of their originals' ids; an original's ``copies`` copies in a
row) has id ``offset + j``, where ``offset``
is the size of the memory's id space (``len(memory.doc_ids)``), and the domain and
``doc_id`` of its original (so the held-out protocols exclude copies with their originals).

``pool``: only copies of these ids are made (default: all ids; a ``MemorySubset``'s kept
ids). The subset is drawn over the whole memory first and then restricted to the pool,
so a copy that is made is the same whatever the pool. With the pool = the union of the
candidates that the evaluated prompts retrieve from the memory without copies, exact
duplication is what the prompts would see with every copy made (a copy of a sequence
outside a prompt's top k ties with it, so it cannot enter the top k either); a near copy
of a sequence just outside the top k could, so there it is an approximation.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.training.memory import ListSearchResult, manifest_entry
from siftlm.training.memory_subset import memory_text

DUPLICATE_KINDS: tuple[str, ...] = ("exact", "near")
NEAR_FRACTION = 0.1
_WORD = re.compile(r"\S+")


def duplicated_ids(n: int, rate: float, seed: int = 0, pool: Sequence[int] | None = None):
    """Sorted int64 ids that get a copy: id i of 0..n-1 when ``u_i < rate`` for one seeded
    draw u ~ U(0, 1)^n (``numpy.random.default_rng(seed)``), kept only if in ``pool``."""
    if not 0 < rate <= 1:
        raise ValueError(f"the duplication rate must be in (0, 1], got {rate}")
    chosen = np.flatnonzero(np.random.default_rng(seed).random(n) < rate)
    if pool is not None:
        chosen = np.intersect1d(chosen, np.asarray(pool, dtype=np.int64))
    return chosen.astype(np.int64)


def near_copy_text(text: str, donor: str, fraction: float, rng: np.random.Generator) -> str:
    """``text`` with ``max(1, round(fraction * words))`` of its whitespace-separated words,
    chosen at random, each replaced by a random word of ``donor`` (whitespace kept)."""
    spans = [match.span() for match in _WORD.finditer(text)]
    words = _WORD.findall(donor)
    if not spans or not words:
        return text
    count = min(len(spans), max(1, round(fraction * len(spans))))
    replaced = np.sort(rng.choice(len(spans), size=count, replace=False))
    parts, end = [], 0
    for position in replaced:
        start, stop = spans[position]
        parts += [text[end:start], words[int(rng.integers(len(words)))]]
        end = stop
    return "".join(parts) + text[end:]


def near_copy_texts(memory: Any, originals: np.ndarray, fraction: float, seed: int) -> list[str]:
    """The near copy of each original: its own seeded draw (``seed``, id), a donor other
    than itself, so that a copy does not depend on which others are made."""
    n, texts = len(memory.doc_ids), []
    for original in originals.tolist():
        rng = np.random.default_rng([seed, original])
        donor = int(rng.integers(n - 1)) if n > 1 else original
        donor += donor >= original and n > 1  # any sequence but the original
        texts.append(
            near_copy_text(memory_text(memory, original), memory_text(memory, donor), fraction, rng)
        )
    return texts


def _dot(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(B, m) inner products of (B or 1, m, d) vectors with (B, d) queries, in float64 and
    one summation order for both lists, so that an exact copy ties with its original."""
    return (vectors.astype(np.float64) * queries[:, None, :].astype(np.float64)).sum(axis=-1)


class DuplicatedMemory:
    """``memory`` plus injected copies (a ``MemoryLike``; see the module docstring)."""

    def __init__(
        self,
        memory: Any,
        rate: float,
        kind: str = "exact",
        *,
        seed: int = 0,
        pool: Sequence[int] | None = None,
        near_fraction: float = NEAR_FRACTION,
        cache: str | Path | None = None,
        copies: int = 1,
    ) -> None:
        if kind not in DUPLICATE_KINDS:
            raise ValueError(f"unknown duplicate kind {kind!r} (choose from exact, near)")
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ValueError(f"copies must be an integer >= 1, got {copies!r}")
        if copies > 1 and kind != "exact":
            raise ValueError(f"{copies} copies per sequence are for exact copies only")
        if not 0 < near_fraction <= 1:
            raise ValueError(f"near_fraction must be in (0, 1], got {near_fraction}")
        self.base, self.kind, self.rate, self.seed = memory, kind, float(rate), int(seed)
        self.manifest = memory.manifest
        self.offset = len(memory.doc_ids)
        pool = getattr(memory, "kept", None) if pool is None else pool
        chosen = duplicated_ids(self.offset, self.rate, self.seed, pool)
        self.originals = np.repeat(chosen, copies)  # an original's copies in a row
        self.copies = copies
        if kind == "exact":
            self.texts = [memory_text(memory, i) for i in self.originals.tolist()]
            self._embeddings = np.asarray(memory.embeddings[self.originals], dtype=np.float32)
        else:
            self.texts = near_copy_texts(memory, self.originals, near_fraction, self.seed)
            self._embeddings = None  # embedded on first use (slow)
        self.cache = None if cache is None else Path(cache)
        base_doc_ids, base_domains = memory.doc_ids, memory.domains
        self.doc_ids = [*base_doc_ids, *(base_doc_ids[i] for i in self.originals.tolist())]
        self.domains = [*base_domains, *(base_domains[i] for i in self.originals.tolist())]

    def __len__(self) -> int:
        return len(self.base) + len(self.originals)

    def __repr__(self) -> str:
        return (
            f"DuplicatedMemory({self.base!r}, rate={self.rate}, kind={self.kind!r}, "
            f"copies={len(self.originals)}, per sequence {self.copies})"
        )

    @property
    def path(self) -> Any:
        return getattr(self.base, "path", "")

    @property
    def copy_embeddings(self) -> np.ndarray:
        """(copies, d) float32: stored vectors (exact) or the embedder's (near, cached)."""
        if self._embeddings is None:
            self._embeddings = self._embed_copies()
        return self._embeddings

    def text(self, i: int) -> str:
        i = int(i)
        return memory_text(self.base, i) if i < self.offset else self.texts[i - self.offset]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.embed(texts)

    def search(
        self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None
    ) -> ListSearchResult:
        """The top ``k`` of the memory's and the copies' top ``k``, by score (ties: the
        memory's sequences first); ``exclude``: ids of either never returned."""
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k} is out of range for a memory of {len(self)} sequences")
        queries = np.atleast_2d(np.asarray(query_embeddings, dtype=np.float32))
        allowed = np.ones(len(self.originals), dtype=bool)
        base_k = min(k, len(self.base))
        if exclude is None:
            hits = self.base.search(queries, base_k)
        else:
            excluded = np.unique(np.asarray(exclude, dtype=np.int64))
            copies = excluded[excluded >= self.offset] - self.offset
            if copies.size and copies[-1] >= len(self.originals):
                raise ValueError(f"exclude holds ids beyond the memory's {len(self)} ids")
            allowed[copies] = False
            hits = self.base.search(queries, base_k, exclude=excluded[excluded < self.offset])
        return self._merge(queries, hits, np.flatnonzero(allowed), k)

    def _merge(self, queries: np.ndarray, hits, allowed: np.ndarray, k: int) -> ListSearchResult:
        """Per query: the memory's hits and the allowed copies' best, top ``k`` by score."""
        embeddings = self.copy_embeddings[allowed]
        base_scores = _dot(np.asarray(hits.embeddings, dtype=np.float32), queries)
        copy_scores = _dot(embeddings[None], queries)
        doc_ids = getattr(hits, "doc_ids", None)
        rows: dict[str, list] = {key: [] for key in ListSearchResult._fields}
        for b in range(len(queries)):
            best = np.argsort(-copy_scores[b], kind="stable")[:k]
            scores = np.concatenate([base_scores[b], copy_scores[b, best]])
            order = np.argsort(-scores, kind="stable")[:k]
            n_hits = base_scores.shape[1]
            copy_ids = allowed[best]  # copy numbers
            ids = np.concatenate([np.asarray(hits.ids[b], np.int64), self.offset + copy_ids])
            vectors = np.concatenate([np.asarray(hits.embeddings[b], np.float32), embeddings[best]])
            originals = self.originals[copy_ids].tolist()

            def pick(base_values, copy_values, order=order, n_hits=n_hits):
                return [base_values[i] if i < n_hits else copy_values[i - n_hits] for i in order]

            rows["ids"].append(ids[order])
            rows["scores"].append(scores[order].astype(np.float32))
            rows["embeddings"].append(vectors[order])
            rows["texts"].append(pick(hits.texts[b], [self.texts[c] for c in copy_ids]))
            rows["domains"].append(pick(hits.domains[b], [self.domains[i] for i in originals]))
            base_docs = doc_ids[b] if doc_ids is not None else [None] * n_hits
            rows["doc_ids"].append(pick(base_docs, [self.doc_ids[i] for i in originals]))
        return ListSearchResult(
            ids=np.stack(rows["ids"]),
            scores=np.stack(rows["scores"]),
            embeddings=np.stack(rows["embeddings"]),
            texts=rows["texts"],
            domains=rows["domains"],
            doc_ids=rows["doc_ids"],
        )

    def _embed_copies(self) -> np.ndarray:
        """The near copies' embeddings: from ``cache`` if it holds these texts' vectors,
        else embedded and saved there (under a lock: concurrent workers embed once)."""
        embedder = manifest_entry(self.manifest, "embedder").get("name", "")
        key = hashlib.sha256("\0".join([embedder, *self.texts]).encode("utf-8")).hexdigest()
        if self.cache is None:
            return self._embed_texts()
        import fcntl

        self.cache.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache.with_name(f".{self.cache.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, also by a crash
            if self.cache.exists():
                with np.load(self.cache) as saved:
                    if str(saved["key"]) == key:
                        return np.asarray(saved["embeddings"], dtype=np.float32)
            vectors = self._embed_texts()
            tmp = self.cache.with_name(f".{self.cache.name}.{os.getpid()}.tmp.npz")
            np.savez(tmp, key=np.array(key), originals=self.originals, embeddings=vectors)
            os.replace(tmp, self.cache)
        return vectors

    def _embed_texts(self) -> np.ndarray:
        if not self.texts:
            return np.zeros((0, int(self.base.embeddings.shape[1])), dtype=np.float32)
        print(f"embedding {len(self.texts)} near copies (once)", file=sys.stderr, flush=True)
        return np.asarray(self.base.embed(self.texts), dtype=np.float32)
