"""Faiss indexes given by factory string, and the one search knob each approximate index has.

A factory string is what Faiss users already write: ``"HNSW32"``, ``"IVF4096,PQ64"``,
``"OPQ16,IVF1024,PQ16"``, ``"IVF1024_HNSW32,Flat"`` (see the Faiss wiki, "The index
factory"). The metric is always the inner product (the stored vectors are L2-normalised,
so it is the cosine). An index that needs training (IVF's coarse quantizer, PQ's
codebooks, OPQ's rotation) is trained on a random sample of the vectors:

    sample = min(N, max(10_000, 64 * nlist))

(Faiss warns below 39 points per centroid and subsamples above 256; 10,000 covers PQ's
256 centroids per sub-quantizer.) The search knob (``nprobe`` for anything with inverted
lists, ``efSearch`` for HNSW) is found through wrappers (OPQ/PCA pre-transforms,
re-ranking) and set with Faiss's ``ParameterSpace``, so :func:`tune_recall
<siftlm.datastore.index.tune_recall>` can raise it to a recall target.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# a factory string is parsed once with this dimension before any embedding is done, so
# that a typo fails at once; 1536 is divisible by every usual PQ/OPQ/PCA size
_PROBE_DIM = 1536
_HNSW_CEILING = 4096


class Knob(NamedTuple):
    """An approximate index's search parameter: its name, value and largest useful value."""

    name: str  # "nprobe" or "efSearch"
    value: int
    ceiling: int


def _faiss():
    import faiss

    return faiss


def new_index(spec: str, dim: int):
    """An empty inner-product index of dimension ``dim`` made from the factory string ``spec``.

    Raises ValueError naming ``spec`` if Faiss cannot make it.
    """
    faiss = _faiss()
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"index must be a kind or a Faiss factory string, got {spec!r}")
    try:
        return faiss.index_factory(int(dim), spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"index {spec!r}: Faiss cannot make this index at dimension {dim} ({reason}); "
            "use 'flat', 'ivf', 'hnsw' or a factory string such as 'HNSW32' or 'IVF1024,PQ16'"
        ) from error


def check_spec(spec: str) -> None:
    """Raise ValueError now if ``spec`` is not a factory string Faiss can parse."""
    faiss = _faiss()
    try:
        faiss.index_factory(_PROBE_DIM, str(spec), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"unknown index {spec!r}: not flat, ivf or hnsw, and not a factory string Faiss "
            f"can make ({reason}); e.g. 'HNSW32' or 'IVF1024,PQ16'"
        ) from None


def training_size(index, n: int) -> int:
    """How many of ``n`` vectors to train ``index`` on (see the module's docstring)."""
    ivf = _ivf(index)
    nlist = 0 if ivf is None else int(ivf.nlist)
    return min(n, max(10_000, 64 * nlist))


def train_index(index, sample: np.ndarray, spec: str = "") -> None:
    """Train ``index`` on ``sample`` (S, d) float32 if it needs training."""
    if index.is_trained:
        return
    ivf = _ivf(index)
    if ivf is not None and len(sample) < ivf.nlist:
        raise ValueError(
            f"index {spec!r} has {ivf.nlist} inverted lists but only {len(sample)} vectors to "
            "train them on; use fewer lists (IVF<n> with n well below the number of chunks) "
            "or 'flat'"
        )
    try:
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"index {spec!r}: training failed on {len(sample)} vectors ({reason})"
        ) from error


def build_factory_index(embeddings: np.ndarray, spec: str, seed: int = 0, add_batch: int = 65536):
    """An index made from ``spec``, trained on a sample of ``embeddings`` (N, d), holding them all."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    n, dim = vectors.shape
    index = new_index(spec, dim)
    if not index.is_trained:
        size = training_size(index, n)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        ivf = _ivf(index)
        if ivf is not None:
            ivf.cp.seed = seed
        train_index(index, vectors[rows], spec)
    for start in range(0, n, add_batch):
        index.add(np.ascontiguousarray(vectors[start : start + add_batch]))
    return index


def _ivf(index):
    faiss = _faiss()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw(index):
    faiss = _faiss()
    index = faiss.downcast_index(index)
    while True:
        if isinstance(index, faiss.IndexHNSW):
            return index
        if isinstance(index, faiss.IndexPreTransform):
            index = faiss.downcast_index(index.index)
        elif isinstance(index, faiss.IndexRefine):
            index = faiss.downcast_index(index.base_index)
        else:
            return None


def is_lossy(index) -> bool:
    """Whether ``index`` scores candidates from compressed codes (PQ, SQ, OPQ/PCA
    transforms, ...) rather than from the full float32 vectors.

    Exact scorers: flat, IVF-flat, HNSW/NSG over flat storage, a refine stage over a
    flat index (``...,RFlat``), an ID map over any of these. Anything else counts as
    lossy: re-scoring its candidates exactly is always correct, at worst unneeded.
    """
    faiss = _faiss()
    index = faiss.downcast_index(index)  # the caller keeps the owning object alive
    if isinstance(index, (faiss.IndexFlat, faiss.IndexIVFFlat)):
        return False
    if isinstance(index, (faiss.IndexHNSW, faiss.IndexNSG)):
        return is_lossy(index.storage)
    if isinstance(index, faiss.IndexRefine):
        return is_lossy(index.refine_index)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return is_lossy(index.index)
    return True


def search_knob(index) -> Knob | None:
    """The search parameter of ``index`` (None for an exact or knob-less index)."""
    ivf = _ivf(index)
    if ivf is not None:
        return Knob("nprobe", int(ivf.nprobe), int(ivf.nlist))
    hnsw = _hnsw(index)
    if hnsw is not None:
        return Knob("efSearch", int(hnsw.hnsw.efSearch), _HNSW_CEILING)
    return None


def set_knob(index, value: int) -> None:
    """Set the search parameter of ``index`` (no-op for an index without one)."""
    knob = search_knob(index)
    if knob is None:
        return
    _faiss().ParameterSpace().set_index_parameter(index, knob.name, int(value))


def search_parameters(index, selector):
    """Faiss search parameters that apply ``selector`` (an ``IDSelector``) and keep the
    index's tuned knob, also through OPQ/PCA pre-transforms."""
    faiss = _faiss()
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        inner = search_parameters(index.index, selector)
        return faiss.SearchParametersPreTransform(index_params=inner)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    return faiss.SearchParameters(sel=selector)
