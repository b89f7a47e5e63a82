"""Precomputed embeddings, shipped so that the embedded corpus's store builds in minutes.

Embedding the memory split with all-MiniLM-L6-v2 takes far longer than the build budget
on a 2-core machine, so the project ships the vectors (float16) under ``data/embeddings/``,
keyed by the SHA-256 of each chunk's text. A build uses a vector only if the file was
made with the same embedder (name and weights revision) and the chunk's text is
byte-identical; anything else (another tokenizer, another L, edited documents) is
embedded live. ``siftlm index precompute`` regenerates the file from a full build.

File layout (``.npz``, uncompressed): ``keys`` (N, 16) uint8 (first 16 bytes of
SHA-256 of the UTF-8 text, rows sorted), ``vectors`` (N, d) float16, ``meta`` a JSON
string (embedder name, revision, dim, tokenizer checksum, max_tokens, count).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siftlm.datastore.files import write_bytes_atomic
from siftlm.defaults import EMBEDDINGS_DIR

DATA_DIR = EMBEDDINGS_DIR
SHIPPED = DATA_DIR / "minipile-memory-all-MiniLM-L6-v2.npz"


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


class PrecomputedEmbeddings:
    """Vectors by chunk text, for one embedder."""

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, meta: dict):
        if keys.shape != (len(vectors), 16):
            raise ValueError(
                f"precomputed embeddings: keys {keys.shape} vs vectors {vectors.shape}"
            )
        self.meta = meta
        self.vectors = vectors
        self._row = {bytes(key): i for i, key in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._row)

    def matches(self, embedder_name: str, revision: str) -> bool:
        return self.meta.get("embedder") == embedder_name and self.meta.get("revision") == revision

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (N, d) float32, found (N,) bool); rows not found are zero."""
        rows = np.array([self._row.get(text_digest(t), -1) for t in texts], np.int64)
        found = rows >= 0
        out = np.zeros((len(texts), self.vectors.shape[1]), np.float32)
        out[found] = self.vectors[rows[found]]
        return out, found

    @classmethod
    def load(cls, path: str | Path) -> PrecomputedEmbeddings:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            return cls(archive["keys"], archive["vectors"], meta)

    @staticmethod
    def save(path: str | Path, texts: Sequence[str], vectors: np.ndarray, meta: dict) -> None:
        keys = np.frombuffer(b"".join(text_digest(t) for t in texts), np.uint8).reshape(-1, 16)
        keys, first = np.unique(keys, axis=0, return_index=True)  # sorted, duplicates once
        meta = {**meta, "count": len(keys), "dim": int(vectors.shape[1])}
        buffer = io.BytesIO()
        np.savez(
            buffer,
            keys=keys,
            vectors=np.ascontiguousarray(vectors[first], dtype=np.float16),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(Path(path), buffer.getvalue())


def shipped_embeddings(path: Path = SHIPPED) -> PrecomputedEmbeddings | None:
    """The shipped file, or None if the checkout has none."""
    return PrecomputedEmbeddings.load(path) if path.exists() else None


def export_store(store, path: str | Path) -> int:
    """Write a store's vectors as precomputed embeddings; returns how many."""
    texts = store._texts.to_pylist()
    meta = {
        "embedder": store.manifest.embedder["name"],
        "revision": store.manifest.embedder["revision"],
        "tokenizer": store.manifest.tokenizer["checksum"],
        "max_tokens": store.manifest.chunking["max_tokens"],
        "source": store.manifest.source,
    }
    PrecomputedEmbeddings.save(path, texts, np.asarray(store.embeddings), meta)
    return len(PrecomputedEmbeddings.load(path))
