"""A fraction of a memory, without rebuilding it: the memory-size ablation.

``MemorySubset(memory, fraction, seed)`` keeps a fixed random subset of ``round(fraction
* N)`` of the memory's N sequences and never returns the others: every search passes the
dropped ids to ``memory.search(..., exclude=...)``, the mechanism of the held-out protocols
(a Faiss ID selector for a ``Datastore``), so the index and the files are not touched.

The subset is the first ``round(fraction * N)`` ids of one seeded permutation of 0..N-1,
so for one seed the subsets are nested: the ¼ memory is part of the ½ memory. Ids stay
the memory's own (a kept sequence has the same id, text and embedding as in the full
memory); ``len()`` is the number of kept sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def kept_ids(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted int64 ids of the ``round(fraction * n)`` sequences kept out of ``n``
    (at least 1): the first ones of ``numpy.random.default_rng(seed).permutation(n)``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the memory fraction must be in (0, 1], got {fraction}")
    if n < 1:
        raise ValueError(f"cannot keep a fraction of an empty memory (n={n})")
    count = max(1, round(fraction * n))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:count]).astype(np.int64)


def memory_text(memory: Any, i: int) -> str:
    """The text of sequence ``i``: ``memory.text(i)`` (a ``Datastore``) or ``memory.texts[i]``."""
    if hasattr(memory, "text"):
        return memory.text(int(i))
    return memory.texts[int(i)]


class MemorySubset:
    """``memory`` restricted to ``kept_ids(len(memory), fraction, seed)`` (a ``MemoryLike``).

    ``doc_ids`` and ``domains`` (for the held-out protocols) are the memory's, indexed by
    its ids; ``search(..., exclude=ids)`` excludes those ids as well as the dropped ones.
    """

    def __init__(self, memory: Any, fraction: float, seed: int = 0) -> None:
        self.base = memory
        self.fraction = float(fraction)
        self.seed = int(seed)
        self.kept = kept_ids(len(memory), self.fraction, self.seed)
        keep = np.zeros(len(memory), dtype=bool)
        keep[self.kept] = True
        self.dropped = np.flatnonzero(~keep).astype(np.int64)
        self.manifest = memory.manifest

    def __len__(self) -> int:
        return len(self.kept)

    def __repr__(self) -> str:
        return f"MemorySubset({self.base!r}, fraction={self.fraction}, kept={len(self)})"

    @property
    def path(self) -> Any:
        return getattr(self.base, "path", "")

    @property
    def doc_ids(self) -> Sequence[str]:
        return self.base.doc_ids

    @property
    def domains(self) -> Sequence[str]:
        return self.base.domains

    @property
    def embeddings(self) -> np.ndarray:
        """The memory's (N, d) embeddings, by its ids (dropped rows included)."""
        return self.base.embeddings

    def text(self, i: int) -> str:
        return memory_text(self.base, i)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.embed(texts)

    def search(self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None):
        """The memory's search with the dropped ids (and ``exclude``) excluded."""
        if not self.dropped.size and exclude is None:
            return self.base.search(query_embeddings, k)
        excluded = self.dropped
        if exclude is not None:
            excluded = np.union1d(excluded, np.asarray(exclude, dtype=np.int64))
        return self.base.search(query_embeddings, k, exclude=excluded)
