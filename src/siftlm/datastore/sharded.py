"""A store made of shards, searched as one.

A corpus too large to build (or index) as one store is built as several stores, with
the same embedder and tokenizer, e.g. one per part of the corpus and each on its own
machine; a folder with ``shards.json`` lists them:

    {"format": 1, "shards": ["part-000", "part-001", ...]}

(paths relative to the folder, or absolute). :class:`ShardedDatastore` opens every
shard (each verified against its own manifest, optionally memory-mapped) and searches
them as one store: chunk ids are global (shard s's chunk i is ``offset[s] + i``, in the
listed order), each query's top k is the best k of the shards' top k by score (ties: the
lower global id), and the result has the same fields as a single store's. Each shard
keeps its own index, which may be of any kind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.datastore.files import write_bytes_atomic
from siftlm.datastore.store import Datastore, SearchResult, StoreError

SHARDS_FILE = "shards.json"
FORMAT = 1


class ShardedEmbeddings:
    """Read-only view of the shards' embeddings under global ids: ``view[ids]`` -> float32."""

    def __init__(self, stores: Sequence[Datastore], offsets: np.ndarray):
        self._stores, self._offsets = stores, offsets
        self.shape = (int(offsets[-1]), stores[0].dim)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, ids) -> np.ndarray:
        flat = np.asarray(ids, np.int64)
        out = np.empty((flat.size, self.shape[1]), np.float32)
        shard = np.searchsorted(self._offsets, flat.ravel(), side="right") - 1
        for s in np.unique(shard):
            rows = np.flatnonzero(shard == s)
            local = flat.ravel()[rows] - self._offsets[s]
            out[rows] = np.asarray(self._stores[s].embeddings[local], np.float32)
        return out.reshape(*flat.shape, self.shape[1])


class ShardedDatastore:
    """Several stores with one embedder and tokenizer, searched as one (global chunk ids)."""

    def __init__(self, stores: Sequence[Datastore], path: Path | None = None):
        if not stores:
            raise ValueError("a sharded store needs at least one shard")
        first = stores[0].manifest
        for store in stores[1:]:
            other = store.manifest
            if (other.embedder, other.tokenizer) != (first.embedder, first.tokenizer):
                raise StoreError(
                    f"shard {store.path} was built with embedder {other.embedder['name']} / "
                    f"tokenizer {other.tokenizer['name']}, shard {stores[0].path} with "
                    f"{first.embedder['name']} / {first.tokenizer['name']}: shards must share both"
                )
        self.stores = list(stores)
        self.path = path
        self.offsets = np.cumsum([0] + [len(s) for s in stores]).astype(np.int64)
        self.manifest = first  # embedder and tokenizer: the same for every shard

    @staticmethod
    def create(path: str | Path, shards: Sequence[str | Path]) -> Path:
        """Write ``path/shards.json`` listing ``shards`` (each opened once, as a check)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for shard in shards:
            shard = Path(shard)
            Datastore.open(shard, verify=False)
            absolute = shard.resolve()
            try:
                names.append(str(absolute.relative_to(folder.resolve())))
            except ValueError:
                names.append(str(absolute))
        body = json.dumps({"format": FORMAT, "shards": names}, indent=2) + "\n"
        write_bytes_atomic(folder / SHARDS_FILE, body.encode())
        return folder

    @classmethod
    def open(cls, path: str | Path, **options: Any) -> ShardedDatastore:
        """Open the shards listed in ``path/shards.json``; ``options`` go to
        :meth:`Datastore.open` for each (``embedder``, ``verify``, ``mmap``)."""
        folder = Path(path)
        file = folder / SHARDS_FILE
        try:
            body = json.loads(file.read_text())
            names = body["shards"]
        except FileNotFoundError as error:
            raise FileNotFoundError(f"no {SHARDS_FILE} in {folder}") from error
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise StoreError(f"{file}: not a list of shards ({error})") from error
        if body.get("format") != FORMAT:
            raise StoreError(f"{file}: format {body.get('format')}, expected {FORMAT}")
        return cls([Datastore.open(folder / name, **options) for name in names], path=folder)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return (
            f"ShardedDatastore({str(self.path)!r}, shards={len(self.stores)}, chunks={len(self)})"
        )

    @property
    def dim(self) -> int:
        return self.stores[0].dim

    @property
    def embeddings(self) -> ShardedEmbeddings:
        return ShardedEmbeddings(self.stores, self.offsets)

    def _locate(self, i: int) -> tuple[Datastore, int]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"chunk {i} out of range (store has {len(self)})")
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.stores[s], i - int(self.offsets[s])

    def text(self, i: int) -> str:
        store, local = self._locate(i)
        return store.text(local)

    def domain(self, i: int) -> str:
        store, local = self._locate(i)
        return store.domain(local)

    def doc_id(self, i: int) -> str:
        store, local = self._locate(i)
        return store.doc_id(local)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(N, d) float32 with the shards' embedder (loaded once, by the first shard)."""
        return self.stores[0].embed(texts, batch_size=batch_size)

    def search(
        self, query_embeddings: np.ndarray, k: int, *, exclude: Sequence[int] | None = None
    ) -> SearchResult:
        """The best ``k`` of every shard's top ``k``, per query, best first; global ids.
        ``exclude``: global chunk ids no query may return."""
        excluded = None if exclude is None else np.unique(np.asarray(exclude, np.int64))
        if excluded is not None and excluded.size:
            if excluded[0] < 0 or excluded[-1] >= len(self):
                raise ValueError(f"exclude holds ids outside the store's 0..{len(self) - 1}")
            if len(self) - excluded.size < min(k, len(self)):
                raise ValueError(
                    f"only {len(self) - excluded.size} of the store's {len(self)} chunks "
                    f"remain after excluding {excluded.size}; cannot return k={k} candidates"
                )
        parts = []
        for s, store in enumerate(self.stores):
            lo, hi = self.offsets[s], self.offsets[s + 1]
            mine = None if excluded is None else excluded[(excluded >= lo) & (excluded < hi)] - lo
            if mine is not None and len(mine) >= len(store):
                continue  # everything in this shard is excluded
            room = len(store) - (0 if mine is None else len(mine))
            parts.append((s, store.search(query_embeddings, min(k, room), exclude=mine)))
        offsets = [self.offsets[s] for s, _ in parts]
        parts = [part for _, part in parts]
        scores = np.concatenate([p.scores for p in parts], axis=1)
        ids = np.concatenate([p.ids + off for p, off in zip(parts, offsets, strict=True)], 1)
        order = np.lexsort((ids, -scores))[:, : min(k, len(self))]  # per row
        embeddings = np.concatenate([p.embeddings for p in parts], axis=1)

        def pick(field: str) -> list[list[str]]:
            joined = [sum((getattr(p, field)[b] for p in parts), []) for b in range(len(ids))]
            return [[row[j] for j in keep] for row, keep in zip(joined, order, strict=True)]

        return SearchResult(
            ids=np.take_along_axis(ids, order, 1),
            scores=np.take_along_axis(scores, order, 1),
            embeddings=np.take_along_axis(embeddings, order[:, :, None], 1),
            texts=pick("texts"),
            domains=pick("domains"),
            doc_ids=pick("doc_ids"),
        )


def open_any(path: str | Path, **options: Any) -> Datastore | ShardedDatastore:
    """A sharded store if ``path`` holds ``shards.json``, else a single store."""
    if (Path(path) / SHARDS_FILE).exists():
        return ShardedDatastore.open(path, **options)
    return Datastore.open(path, **options)
