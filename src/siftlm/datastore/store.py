"""The datastore: opening a store folder and searching it.

The folder's layout (``chunks.arrow``, ``embeddings.npy``, ``index.faiss``,
``manifest.json``) is described in :mod:`siftlm.datastore.layout`. Opening checks every
file against the manifest (and the manifest against its own checksum): sizes always,
SHA-256 once per opening unless ``verify=False``, so that a truncated or altered file is
reported, never silently used.

Single inputs (the rule of the whole API, as in sentence-transformers): a text gives a
vector, a list of texts gives a matrix. ``embed("a text")`` is (d,), ``embed([...])`` is
(N, d); ``search`` takes (B, d) queries, or one (d,) query as B = 1, and its result always
has B rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siftlm.datastore.embedders import Embedder, describe_spec, load_embedder
from siftlm.datastore.factory import is_lossy
from siftlm.datastore.layout import (  # noqa: F401 - re-exported: their historical home
    CHUNKS_FILE,
    DATA_FILES,
    EMBEDDINGS_FILE,
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST_FILE,
    Manifest,
    StoreError,
    verify_files,
)

if TYPE_CHECKING:
    from siftlm.datastore.config import BuildConfig


@dataclass
class SearchResult:
    """Top-k neighbours per query, rows in query order, columns by decreasing score.

    ids: (B, k) int64 chunk ids; scores: (B, k) float32 inner products (cosines);
    embeddings: (B, k, d) float32 stored vectors of the neighbours (never an index's
    compressed reconstruction); texts, domains, doc_ids: B lists of k strings.

    Scores are exact for every index: a lossy index's (PQ, SQ, ...) candidates are
    re-scored, scores[b, j] = <embeddings[b, j], query_b>, and re-sorted (ties: lower
    id first); which k are found (the recall) is still the index's.
    """

    ids: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray
    texts: list[list[str]]
    domains: list[list[str]]
    doc_ids: list[list[str]]

    def __len__(self) -> int:
        return len(self.ids)


def _search(index, queries: np.ndarray, k: int, selector=None) -> tuple[np.ndarray, np.ndarray]:
    """Faiss search, with ``selector`` (an ``IDSelector``) passed in the search parameters
    of the index's kind so that approximate indexes keep their tuned knob."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if selector is None:
        return index.search(queries, k)
    from siftlm.datastore.factory import search_parameters  # also through OPQ/PCA wrappers

    return index.search(queries, k, params=search_parameters(index, selector))


def _rescore(
    queries: np.ndarray, ids: np.ndarray, embeddings: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact scores of the candidates, best first.

    queries: (B, d); ids: (B, k); embeddings: (B, k, d) their stored vectors. Returns
    (ids, scores, embeddings) re-ordered by decreasing score = <embedding, query>
    (accumulated in float64, returned as float32; ties: the lower id first).
    """
    exact = np.einsum("bkd,bd->bk", embeddings.astype(np.float64), queries.astype(np.float64))
    scores = exact.astype(np.float32)
    order = np.lexsort((ids, -scores))  # per row
    return (
        np.take_along_axis(ids, order, 1),
        np.take_along_axis(scores, order, 1),
        np.take_along_axis(embeddings, order[:, :, None], 1),
    )


def check_embedder(manifest: Manifest, embedder: str | Embedder, where: str) -> None:
    """Raise if ``embedder`` is not the one the store was built with (naming both)."""
    stored = manifest.embedder
    name, revision = describe_spec(embedder)
    same_name = name == stored["name"]
    known = "unknown" not in (revision, stored["revision"])
    same_weights = known and revision == stored["revision"]
    if not (same_name or same_weights) or (same_name and known and not same_weights):
        raise ValueError(
            f"store {where} was embedded with {stored['name']} (revision {stored['revision']}, "
            f"dim {stored['dim']}), not with {name} (revision {revision}); "
            "rebuild the store or open it with its own embedder"
        )
    dim = getattr(embedder, "dim", None)
    if dim is not None and int(dim) != manifest.dim:
        raise ValueError(
            f"store {where} has dimension {manifest.dim} ({stored['name']}), the embedder "
            f"{name} gives {dim}"
        )


class Datastore:
    """A chunked, embedded and indexed corpus. Make one with :meth:`build`, reopen with :meth:`open`."""

    def __init__(self, path: Path, manifest: Manifest, table, embeddings, index, embedder):
        self.path = path
        self.manifest = manifest
        self._table = table
        self._embeddings = embeddings
        self._index = index
        self._embedder = embedder  # spec string until first use, then the loaded embedder
        self._texts = table.column("text")
        self._domains = table.column("domain")
        self._doc_ids = table.column("doc_id")
        self._exact = None  # a flat index, made on demand if an approximate one falls short
        self._lossy = is_lossy(index)  # PQ/SQ/...: candidates are re-scored exactly
        self._doc_id_list: list[str] | None = None
        self._domain_list: list[str] | None = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def build(
        cls, source: Any, path: str | Path, config: BuildConfig | None = None, **options: Any
    ) -> Datastore:
        """Chunk, embed, index and persist ``source`` into the folder ``path``.

        ``config``: a :class:`~siftlm.datastore.config.BuildConfig`; ``options``: fields of
        it to change. See :func:`siftlm.datastore.build.build_store`.
        """
        from siftlm.datastore.build import build_store

        path, embedder = build_store(source, path, config, **options)
        return cls.open(path, embedder=embedder)

    @classmethod
    def open(
        cls,
        path: str | Path,
        embedder: str | Embedder | None = None,
        verify: bool = True,
        mmap: bool = False,
    ) -> Datastore:
        """Open a store; ``embedder`` (a spec or an object) must match the manifest's.

        ``verify=True`` checks the SHA-256 of every file (sizes are always checked).
        ``mmap=True`` maps the index from its file (read-only) instead of reading it into
        memory, for stores larger than RAM.
        """
        import pyarrow as pa

        from siftlm.datastore.index import read_index

        path = Path(path)
        manifest_file = path / MANIFEST_FILE
        if not manifest_file.exists():
            backups = sorted(path.parent.glob(f".{path.name}.old-*"))
            hint = f"; a previous version is at {backups[-1]}" if backups else ""
            if path.is_dir():
                raise StoreError(f"store {path}: manifest.json is missing{hint}")
            raise FileNotFoundError(
                f"no store at {path}{hint}; build one with `siftlm index build`"
            )
        manifest = Manifest.from_json(manifest_file.read_text(), where=str(manifest_file))
        if embedder is not None:
            check_embedder(manifest, embedder, str(path))
        verify_files(path, manifest, checksums=verify)
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path / CHUNKS_FILE))).read_all()
            embeddings = np.load(path / EMBEDDINGS_FILE, mmap_mode="r")
            index = read_index(str(path / INDEX_FILE), mmap=mmap)
        except (OSError, ValueError, RuntimeError, pa.ArrowInvalid) as error:
            raise StoreError(f"store {path}: cannot read its files ({error})") from error
        n = manifest.counts["chunks"]
        shapes = (table.num_rows, embeddings.shape[0], index.ntotal)
        if shapes != (n, n, n) or embeddings.shape[1] != manifest.dim or index.d != manifest.dim:
            raise StoreError(
                f"store {path}: inconsistent files (rows: chunks {shapes[0]}, embeddings "
                f"{shapes[1]}, index {shapes[2]}; manifest {n} x {manifest.dim})"
            )
        return cls(path, manifest, table, embeddings, index, embedder or manifest.embedder_name)

    # -- access ---------------------------------------------------------------------

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"Datastore({str(self.path)!r}, chunks={len(self)}, embedder={self.manifest.embedder_name!r})"

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def embeddings(self) -> np.ndarray:
        """(N, d) stored embeddings (float16 or float32, memory-mapped, read-only)."""
        return self._embeddings

    @property
    def embedder(self) -> Embedder:
        if isinstance(self._embedder, str):
            self._embedder = load_embedder(self._embedder)
            check_embedder(self.manifest, self._embedder, str(self.path))
        return self._embedder

    def text(self, i: int) -> str:
        return self._texts[self._check(i)].as_py()

    def domain(self, i: int) -> str:
        return self._domains[self._check(i)].as_py()

    def doc_id(self, i: int) -> str:
        return self._doc_ids[self._check(i)].as_py()

    def _check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"chunk {i} out of range (store has {len(self)})")
        return i

    def domain_counts(self) -> dict[str, int]:
        return dict(self.manifest.counts["domains"])

    # -- embedding and search -------------------------------------------------------

    def embed(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 vectors by the store's own embedder: (d,) for one text,
        (N, d) for a list of N (see "Single inputs" in the module docstring)."""
        if isinstance(texts, str):
            return self.embed([texts], batch_size)[0]
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.embedder.encode(list(texts), batch_size=batch_size)

    @property
    def doc_ids(self) -> list[str]:
        """The document id of every chunk, by chunk id (read once, then cached)."""
        if self._doc_id_list is None:
            self._doc_id_list = self._doc_ids.to_pylist()
        return self._doc_id_list

    @property
    def domains(self) -> list[str]:
        """The domain of every chunk, by chunk id (read once, then cached)."""
        if self._domain_list is None:
            self._domain_list = self._domains.to_pylist()
        return self._domain_list

    def search(
        self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None
    ) -> SearchResult:
        """Top-``k`` chunks per query row by inner product, in query order.

        ``query_embeddings``: (B, d) (a single (d,) vector is taken as B = 1). ``k`` is
        capped at the store's size. ``exclude``: chunk ids that no query may return
        (a Faiss ID selector at search time, the index is not changed); if fewer than
        ``k`` chunks remain, ValueError.
        """
        queries = np.asarray(query_embeddings, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"queries have shape {tuple(np.shape(query_embeddings))}; the store's "
                f"embeddings ({self.manifest.embedder_name}) have dimension {self.dim}"
            )
        if not np.isfinite(queries).all():
            bad = np.flatnonzero(~np.isfinite(queries).all(axis=1)).tolist()
            raise ValueError(f"query rows {bad[:10]} hold NaN or infinite values (finite only)")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        k = min(int(k), len(self))
        selector = self._selector(exclude, k)
        scores, ids = _search(self._index, queries, k, selector)
        missing = ids < 0
        if missing.any():  # an approximate index found fewer than k: fill from the exact search
            rows = np.flatnonzero(missing.any(axis=1))
            exact_scores, exact_ids = _search(self._exact_index(), queries[rows], k, selector)
            scores[rows], ids[rows] = exact_scores, exact_ids
        return self._result(ids.astype(np.int64), scores.astype(np.float32), queries)

    def _selector(self, exclude: Sequence[int] | None, k: int):
        """A Faiss selector that rejects the ``exclude`` ids (None: no exclusion)."""
        if exclude is None:
            return None
        excluded = np.unique(np.asarray(exclude, dtype=np.int64))
        if excluded.size and (excluded[0] < 0 or excluded[-1] >= len(self)):
            raise ValueError(f"exclude holds ids outside the store's 0..{len(self) - 1}")
        from siftlm.training.heldout import check_enough_left

        where = f"the store's {len(self)} chunks"
        check_enough_left(excluded.size, k, len(self) - excluded.size, where)
        import faiss

        return faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))

    def _result(self, ids: np.ndarray, scores: np.ndarray, queries: np.ndarray) -> SearchResult:
        import pyarrow as pa

        batch, k = ids.shape
        embeddings = np.asarray(self._embeddings[ids.ravel()], np.float32).reshape(batch, k, -1)
        if self._lossy:
            ids, scores, embeddings = _rescore(queries, ids, embeddings)
        taken = pa.array(ids.ravel())

        def rows(column) -> list[list[str]]:
            values = column.take(taken).to_pylist()
            return [values[i * k : (i + 1) * k] for i in range(batch)]

        return SearchResult(
            ids=ids,
            scores=scores,
            embeddings=embeddings,
            texts=rows(self._texts),
            domains=rows(self._domains),
            doc_ids=rows(self._doc_ids),
        )

    def _exact_index(self):
        from siftlm.datastore.index import build_index

        if self._exact is None:
            self._exact = build_index(np.asarray(self._embeddings, np.float32), "flat")
        return self._exact

    # -- reporting ------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        return {name: int(entry["bytes"]) for name, entry in self.manifest.files.items()}
