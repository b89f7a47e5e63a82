"""The datastore on disk, and searching it.

A store is a folder::

    chunks.arrow      texts and metadata (doc_id, domain, chunk, n_tokens, text), Arrow IPC,
                      memory-mapped on open
    embeddings.npy    (N, d) float16 or float32, L2-normalised, memory-mapped on open
    index.faiss       the Faiss inner-product index over the same vectors
    manifest.json     embedder (name, revision, dim), tokenizer, chunking, index, counts,
                      and the size and SHA-256 of every other file

Opening checks every file against the manifest (and the manifest against its own
checksum), so a truncated or altered file is reported, never silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.datastore.embedders import Embedder, describe_spec, load_embedder
from siftlm.datastore.files import sha256_file

FORMAT_VERSION = 1
CHUNKS_FILE = "chunks.arrow"
EMBEDDINGS_FILE = "embeddings.npy"
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (CHUNKS_FILE, EMBEDDINGS_FILE, INDEX_FILE)


class StoreError(ValueError):
    """A store folder that is missing, incomplete, altered or inconsistent."""


@dataclass
class Manifest:
    """What a store holds and how it was made (``manifest.json``)."""

    embedder: dict  # name, revision, dim
    tokenizer: dict  # name, checksum
    chunking: dict  # max_tokens
    index: dict  # kind, search parameter, recall check
    dtype: str
    counts: dict  # chunks, documents, tokens, text_bytes, domains: {domain: chunks}
    source: str
    files: dict = field(default_factory=dict)  # name -> {bytes, sha256}
    build: dict = field(default_factory=dict)  # timings, versions
    format: int = FORMAT_VERSION

    @property
    def dim(self) -> int:
        return int(self.embedder["dim"])

    @property
    def embedder_name(self) -> str:
        return str(self.embedder["name"])

    @property
    def chunks_sha256(self) -> str | None:
        """SHA-256 of ``chunks.arrow``: identifies the chunks and their ids."""
        return self.files.get(CHUNKS_FILE, {}).get("sha256")

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        body = self.as_dict()
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST_FILE) -> Manifest:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise StoreError(
                f"{where}: not valid JSON ({error.msg}); the store is damaged"
            ) from error
        recorded = body.pop("checksum", None)
        if recorded != _checksum(body):
            raise StoreError(f"{where}: checksum mismatch: the manifest was altered or truncated")
        if body.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"{where}: store format {body.get('format')}, expected {FORMAT_VERSION}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in body.items() if k in names})


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class SearchResult:
    """Top-k neighbours per query, rows in query order, columns by decreasing score.

    ids: (B, k) int64 chunk ids; scores: (B, k) float32 inner products (cosines);
    embeddings: (B, k, d) float32 stored vectors of the neighbours; texts, domains,
    doc_ids: B lists of k strings.
    """

    ids: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray
    texts: list[list[str]]
    domains: list[list[str]]
    doc_ids: list[list[str]]

    def __len__(self) -> int:
        return len(self.ids)


def verify_files(path: Path, manifest: Manifest, checksums: bool = True) -> None:
    """Every data file exists with the recorded size (and SHA-256)."""
    for name in DATA_FILES:
        recorded = manifest.files.get(name)
        file = path / name
        if recorded is None:
            raise StoreError(f"store {path}: the manifest lists no {name}")
        if not file.exists():
            raise StoreError(f"store {path}: {name} is missing; rebuild with `siftlm index build`")
        size = file.stat().st_size
        if size != recorded["bytes"]:
            kind = "truncated" if size < recorded["bytes"] else "altered (size changed)"
            raise StoreError(
                f"store {path}: {name} is {kind}: {size} bytes, the manifest says "
                f"{recorded['bytes']}; rebuild with `siftlm index build`"
            )
        if checksums and sha256_file(file) != recorded["sha256"]:
            raise StoreError(
                f"store {path}: {name} was altered (SHA-256 differs from the manifest); "
                "rebuild with `siftlm index build`"
            )


def _search(index, queries: np.ndarray, k: int, selector=None) -> tuple[np.ndarray, np.ndarray]:
    """Faiss search, with ``selector`` (an ``IDSelector``) passed in the search parameters
    of the index's kind so that approximate indexes keep their tuned knob."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if selector is None:
        return index.search(queries, k)
    from siftlm.datastore.factory import search_parameters  # also through OPQ/PCA wrappers

    return index.search(queries, k, params=search_parameters(index, selector))


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
        self._doc_id_list: list[str] | None = None
        self._domain_list: list[str] | None = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def build(cls, source: Any, path: str | Path, **options: Any) -> Datastore:
        """Chunk, embed, index and persist ``source`` into the folder ``path``; see
        :func:`siftlm.datastore.build.build_store` for the options."""
        from siftlm.datastore.build import build_store

        path, embedder = build_store(source, path, **options)
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

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(N, d) float32, L2-normalised, with the store's own embedder."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
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
        return self._result(ids.astype(np.int64), scores.astype(np.float32))

    def _selector(self, exclude: Sequence[int] | None, k: int):
        """A Faiss selector that rejects the ``exclude`` ids (None: no exclusion)."""
        if exclude is None:
            return None
        excluded = np.unique(np.asarray(exclude, dtype=np.int64))
        if excluded.size and (excluded[0] < 0 or excluded[-1] >= len(self)):
            raise ValueError(f"exclude holds ids outside the store's 0..{len(self) - 1}")
        remaining = len(self) - excluded.size
        if remaining < k:
            raise ValueError(
                f"only {remaining} of the store's {len(self)} chunks remain after excluding "
                f"{excluded.size}; cannot return k={k} candidates (lower k)"
            )
        import faiss

        return faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))

    def _result(self, ids: np.ndarray, scores: np.ndarray) -> SearchResult:
        import pyarrow as pa

        batch, k = ids.shape
        flat = ids.ravel()
        taken = pa.array(flat)
        embeddings = np.asarray(self._embeddings[flat], dtype=np.float32).reshape(batch, k, -1)

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
