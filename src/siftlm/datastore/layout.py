"""A store folder on disk: its file names, its manifest, verifying it, and writing it.

A store is a folder::

    chunks.arrow      texts and metadata (doc_id, domain, chunk, n_tokens, text), Arrow IPC
    embeddings.npy    (N, d) float16 or float32, L2-normalised
    index.faiss       the Faiss inner-product index over the same vectors
    manifest.json     embedder (name, revision, dim), tokenizer, chunking, index, counts,
                      and the size and SHA-256 of every other file

Both the build (:mod:`siftlm.datastore.build`) and the reader
(:mod:`siftlm.datastore.store`) depend on this module, never on each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siftlm.datastore.files import fsync_dir, fsync_file, sha256_file

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


def _store_file_names(path: Path) -> set[str]:
    """The names a store folder may hold: the standard ones and any its manifest lists."""
    names = {MANIFEST_FILE, *DATA_FILES}
    try:
        listed = json.loads((path / MANIFEST_FILE).read_text()).get("files", {})
        names.update(str(name) for name in listed)
    except (OSError, ValueError, AttributeError):
        pass  # a damaged manifest: the standard names only
    return names


def check_replaceable(target: Path) -> None:
    """Raise unless building at ``target`` can lose nothing but an older store.

    Allowed: no such path, an empty folder, or a folder holding only store files (a
    store, also a damaged one). Anything else (a file, a folder with other files) is
    refused, naming what is there: a build replaces the whole folder.
    """
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise StoreError(
            f"{target} exists and is not a folder; a store is a folder: choose another "
            "--out (nothing was changed)"
        )
    foreign = sorted(p.name for p in target.iterdir() if p.name not in _store_file_names(target))
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise StoreError(
            f"{target} exists and is not a siftlm store (it holds {shown}); a build "
            "replaces the whole folder: choose another --out (nothing was changed)"
        )


def write_store(target: Path, table, embeddings, index, manifest: Manifest) -> None:
    """Write a store at ``target`` atomically: staged beside it, renamed in when complete.

    ``table``: the Arrow chunk table; ``embeddings``: (N, d) stored vectors; ``index``:
    the Faiss index. The previous store, if any, is moved aside first and deleted after.
    The caller holds the build lock of ``target``.
    """
    import numpy as np
    import pyarrow as pa

    from siftlm.datastore.index import write_index

    stage = target.parent / f".{target.name}.tmp-{os.getpid()}"
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by killed builds (we hold the lock)
    stage.mkdir()
    with pa.OSFile(str(stage / CHUNKS_FILE), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    np.save(stage / EMBEDDINGS_FILE, embeddings, allow_pickle=False)
    write_index(index, str(stage / INDEX_FILE))
    for name in DATA_FILES:
        fsync_file(stage / name)
        manifest.files[name] = {
            "bytes": (stage / name).stat().st_size,
            "sha256": sha256_file(stage / name),
        }
    (stage / MANIFEST_FILE).write_text(manifest.to_json())
    fsync_file(stage / MANIFEST_FILE)
    fsync_dir(stage)
    try:  # again: the folder may have changed during a long build
        check_replaceable(target)
    except StoreError:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    # swap: the old store (if any) is moved aside, the new one renamed in, the old deleted
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.rename(target, old)
    os.rename(stage, target)
    fsync_dir(target.parent)
    for previous in target.parent.glob(f".{target.name}.old-*"):  # ours, and any a crash left
        shutil.rmtree(previous, ignore_errors=True)


def chunk_counts(documents, chunks: list) -> dict:
    """The manifest's counts: documents, chunks, tokens, bytes, per domain."""
    domains: dict[str, int] = {}
    domain_docs: dict[str, set] = {}
    for chunk in chunks:
        domains[chunk.domain] = domains.get(chunk.domain, 0) + 1
        domain_docs.setdefault(chunk.domain, set()).add(chunk.doc_id)
    return {
        "documents": len(documents),
        "documents_with_text": len({c.doc_id for c in chunks}),
        "chunks": len(chunks),
        "tokens": int(sum(c.n_tokens for c in chunks)),
        "text_bytes": int(sum(len(c.text.encode("utf-8", "surrogatepass")) for c in chunks)),
        "domains": dict(sorted(domains.items())),
        "documents_per_domain": {d: len(ids) for d, ids in sorted(domain_docs.items())},
    }


def chunk_table(chunks: list):
    """The chunks as the Arrow table of ``chunks.arrow``."""
    import pyarrow as pa

    return pa.table(
        {
            "doc_id": pa.array([c.doc_id for c in chunks], pa.string()),
            "domain": pa.array([c.domain for c in chunks], pa.string()),
            "chunk": pa.array([c.index for c in chunks], pa.int32()),
            "n_tokens": pa.array([c.n_tokens for c in chunks], pa.int32()),
            "text": pa.array([c.text for c in chunks], pa.large_string()),
        }
    )
