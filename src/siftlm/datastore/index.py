"""Faiss indexes over L2-normalised embeddings (inner product = cosine).

``flat`` is exact and the default. ``ivf`` (inverted lists) and ``hnsw`` (graph) are
approximate, for large stores. Any other Faiss index is given by its factory string
(``"HNSW32"``, ``"IVF4096,PQ64"``, ``"OPQ16,IVF1024,PQ16"``, ...; see
:mod:`siftlm.datastore.factory`); one that needs training is trained on a sample. After
building one, :func:`tune_recall` measures its recall@k against the exact index on a
sample of stored vectors and raises ``nprobe`` / ``efSearch`` until the target recall is
met (or the knob is at its maximum). The measured recall is recorded in the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw")


@dataclass
class RecallReport:
    k: int
    queries: int
    recall: float
    knob: str | None  # "nprobe" / "efSearch"
    value: int | None

    def as_dict(self) -> dict:
        return {
            "k": self.k,
            "queries": self.queries,
            "recall": round(self.recall, 4),
            self.knob or "param": self.value,
        }


def _faiss():
    import faiss  # OpenMP over all cores by default

    return faiss


def build_index(embeddings: np.ndarray, kind: str = "flat", seed: int = 0):
    """A Faiss inner-product index over ``embeddings`` (N, d) float32; ``kind``: one of
    ``INDEX_KINDS`` or a Faiss factory string."""
    if kind not in INDEX_KINDS:
        from siftlm.datastore.factory import build_factory_index

        return build_factory_index(embeddings, kind, seed=seed)
    faiss = _faiss()
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = vectors.shape
    if kind == "flat" or n < 2:
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = min(nlist, 8)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    index.add(vectors)
    return index


def index_kind(index) -> str:
    faiss = _faiss()
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    return "flat"


def set_search_param(index, value: int) -> None:
    from siftlm.datastore.factory import set_knob

    set_knob(index, int(value))


def search_param(index) -> tuple[str | None, int | None]:
    from siftlm.datastore.factory import search_knob

    knob = search_knob(index)
    return (None, None) if knob is None else (knob.name, knob.value)


def recall_at_k(index, embeddings: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Fraction of the exact top-k (brute force over ``embeddings``) that ``index`` returns."""
    faiss = _faiss()
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return hits / truth.size


def tune_recall(
    index,
    embeddings: np.ndarray,
    k: int = 10,
    target: float = 0.95,
    queries: int = 500,
    seed: int = 0,
) -> RecallReport:
    """Measure recall@k against the exact index; for ivf/hnsw raise the search knob to ``target``."""
    n = len(embeddings)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(queries, n), replace=False)
    # stored vectors, slightly perturbed so that the query is not trivially itself
    query = embeddings[np.sort(sample)].astype(np.float32)
    query += rng.normal(scale=0.05 / math.sqrt(query.shape[1]), size=query.shape).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    from siftlm.datastore.factory import search_knob

    found = search_knob(index)
    knob, value = (None, None) if found is None else (found.name, found.value)
    recall = recall_at_k(index, embeddings, query, k)
    if found is not None:
        ceiling = found.ceiling
        while recall < target and value < ceiling:
            value = min(ceiling, value * 2)
            set_search_param(index, value)
            recall = recall_at_k(index, embeddings, query, k)
    return RecallReport(k=k, queries=len(query), recall=recall, knob=knob, value=value)


def write_index(index, path: str) -> None:
    _faiss().write_index(index, path)


def read_index(path: str, mmap: bool = False):
    """The index in ``path``; ``mmap=True`` maps its vectors (flat, HNSW storage, inverted
    lists) from the file instead of reading them into memory, read-only, so that an index
    larger than RAM opens and only the pages a search touches are loaded."""
    faiss = _faiss()
    if not mmap:
        return faiss.read_index(path)
    return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
