"""Building a store: ingest -> chunk -> embed (in shards, resumable) -> index -> persist.

Crash safety:

- Embeddings are computed in shards of ``shard_size`` chunks (chunks sorted longest
  first, so each shard is nearly uniform in length). Each finished shard is written
  atomically (temporary file, fsync, rename) into a work folder beside the target,
  ``.<name>.work/``, together with ``plan.json``, a hash of everything the embeddings
  depend on (embedder and its weights, tokenizer, L, the chunk texts). A rerun with the
  same plan reuses the finished shards; a different plan starts the work folder afresh.
- The store is written into ``.<name>.tmp-<pid>/`` and renamed onto the target only when
  complete (the previous store, if any, is moved aside first and deleted after). A build
  that fails or is killed never touches an existing store.
- A lock file, ``.<name>.lock``, keeps two builds from writing the same target at once.
- A build replaces only what is a store: an existing target that is a file, or a folder
  holding anything but store files, is refused before any work (see
  :func:`siftlm.datastore.layout.check_replaceable`).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.datastore.chunking import (
    Chunk,
    chunk_documents,
    default_max_tokens,
    fast_tokenizer,
    tokenizer_checksum,
    tokenizer_name,
)
from siftlm.datastore.config import BuildConfig
from siftlm.datastore.embedders import (
    Embedder,
    check_embedder_spec,
    describe_spec,
    load_embedder,
)
from siftlm.datastore.files import fsync_dir, fsync_file, write_bytes_atomic
from siftlm.datastore.index import INDEX_KINDS, build_index, index_kind, tune_recall
from siftlm.datastore.ingest import Fields, SourceDocument, describe_source, read_documents
from siftlm.datastore.layout import (
    Manifest,
    check_replaceable,
    chunk_counts,
    chunk_table,
    write_store,
)
from siftlm.datastore.precomputed import PrecomputedEmbeddings, text_digest


def work_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.work"


def build_store(
    source: Any, path: str | Path, config: BuildConfig | None = None, **options: Any
) -> tuple[Path, Embedder | None]:
    """Build the store for ``source`` at ``path``; returns the path and the embedder if loaded.

    ``source``: ``"minipile"`` (the embedded memory split), a list of documents, a
    JSONL/Parquet file, a folder of text files, or a saved ``datasets`` dataset.
    ``config``: a :class:`~siftlm.datastore.config.BuildConfig` (default: its defaults);
    ``options``: fields of it to change, e.g. ``embedder=..., max_tokens=64``.

    ``path`` must not exist, or be an empty folder or a store (which is replaced once the
    new one is complete); anything else is refused before any work is done.
    """
    config = (config or BuildConfig()).replace(**options)
    target = Path(path).expanduser().resolve()
    check_replaceable(target)
    check_embedder_spec(config.embedder)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _lock(target):
        check_replaceable(target)  # under the lock: another build may have written it
        tok = fast_tokenizer(config.tokenizer)
        limit = config.max_tokens if config.max_tokens is not None else default_max_tokens(tok)
        documents, chunks, timings = _read_and_chunk(source, tok, limit, config)
        precomputed = config.precomputed
        if isinstance(precomputed, str):  # "auto"
            precomputed = _shipped_for(source)
        plan = _plan(config.embedder, tok, limit, chunks, config.shard_size, precomputed)
        clock = time.perf_counter()
        vectors, loaded, stats = _embed_resumable(
            chunks, config, plan, work_dir(target), precomputed
        )
        timings["embedding_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        stored, faiss_index, recall = _index(vectors, config)
        timings["indexing_s"] = time.perf_counter() - clock
        timings["total_s"] = time.perf_counter() - started
        manifest = _manifest(source, config, plan, tok, documents, chunks, faiss_index, recall)
        manifest.build.update({key: round(value, 2) for key, value in timings.items()}, **stats)
        write_store(target, chunk_table(chunks), stored, faiss_index, manifest)
        shutil.rmtree(work_dir(target), ignore_errors=True)
    return target, loaded


def _manifest(source, config, plan, tok, documents, chunks, faiss_index, recall) -> Manifest:
    """The manifest of a finished build, less its files and timings (added by the caller)."""
    dim = int(faiss_index.d)
    return Manifest(
        embedder={"name": plan["embedder"], "revision": plan["revision"], "dim": dim},
        tokenizer={"name": tokenizer_name(config.tokenizer, tok), "checksum": plan["tokenizer"]},
        chunking={"max_tokens": plan["max_tokens"], "special_tokens": False},
        index={
            "kind": index_kind(faiss_index) if config.index in INDEX_KINDS else config.index,
            "recall_check": recall.as_dict(),
        },
        dtype=config.dtype,
        counts=chunk_counts(documents, chunks),
        source=describe_source(source),
        build={"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "siftlm": _version()},
    )


def _read_and_chunk(
    source: Any, tok, limit: int, config: BuildConfig
) -> tuple[list[SourceDocument], list[Chunk], dict[str, float]]:
    """The documents of ``source``, their chunks, and the time it took (``chunking_s``)."""
    fields = Fields(text=config.text_field, id=config.id_field, domain=config.domain_field)
    documents = read_documents(source, fields, config.split)
    if not documents:
        raise ValueError(f"source {describe_source(source)} holds no documents")
    clock = time.perf_counter()
    with _bar(config.show_progress, len(documents), "chunking", "doc") as bar:
        chunks = chunk_documents(documents, tok, limit, progress=bar.update)
    if not chunks:
        raise ValueError(f"source {describe_source(source)} holds no text")
    return documents, chunks, {"chunking_s": time.perf_counter() - clock}


def _plan(embedder, tok, limit: int, chunks: list[Chunk], shard_size: int, precomputed) -> dict:
    """Everything the embeddings depend on: a finished shard is reused only for the same plan."""
    name, revision = describe_spec(embedder)
    return {
        "embedder": name,
        "revision": revision,
        "tokenizer": tokenizer_checksum(tok),
        "max_tokens": limit,
        "shard_size": shard_size,
        "chunks": _chunks_digest(chunks),
        # shards filled from precomputed vectors must not count as fresh ones
        "precomputed": None if precomputed is None else dict(precomputed.meta),
    }


def _index(vectors: np.ndarray, config: BuildConfig):
    """(stored vectors in ``config.dtype``, the Faiss index over them, its recall check)."""
    stored = vectors.astype(config.dtype)
    # the index holds exactly the stored (possibly float16-rounded) vectors, so that a
    # search's scores are the inner products with the embeddings it returns
    searchable = stored.astype(np.float32)
    faiss_index = build_index(searchable, config.index)
    return stored, faiss_index, tune_recall(faiss_index, searchable, target=config.recall_target)


def _shipped_for(source: Any):
    from siftlm.datastore.precomputed import shipped_embeddings

    is_embedded = isinstance(source, str) and source.split(":")[0] == "minipile"
    return shipped_embeddings() if is_embedded else None


def _version() -> str:
    from siftlm import __version__

    return __version__


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise ValueError(f"another build is writing {target} (lock {lock_path})") from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _bar(enabled: bool, total: int, desc: str, unit: str, initial: int = 0):
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    try:
        yield bar
    finally:
        bar.close()


def _chunks_digest(chunks: list[Chunk]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        for part in (chunk.doc_id, str(chunk.index), chunk.text):
            encoded = part.encode("utf-8", "surrogatepass")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
    return digest.hexdigest()


def _shards(chunks: list[Chunk], shard_size: int) -> list[np.ndarray]:
    """Chunk ids, longest text first (ties by id), cut into shards."""
    lengths = np.fromiter((len(c.text) for c in chunks), np.int64, len(chunks))
    order = np.lexsort((np.arange(len(chunks)), -lengths))
    return [order[i : i + shard_size] for i in range(0, len(order), shard_size)]


def _prepare_work(work: Path, plan: dict) -> PrecomputedEmbeddings | None:
    """Keep ``work`` if it was made for ``plan``; otherwise start it afresh, returning the
    vectors of its finished shards (by text) if they came from the same embedder, so that a
    build over an edited corpus embeds only the chunks whose text changed."""
    plan_file = work / "plan.json"
    harvested = None
    if work.exists():
        try:
            previous = json.loads(plan_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        if previous == plan:
            return None
        same_embedder = all(previous.get(key) == plan[key] for key in ("embedder", "revision"))
        if same_embedder and previous.get("precomputed") is None:
            harvested = _harvest(work, plan)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    plan_file.write_text(json.dumps(plan, indent=2, sort_keys=True))
    fsync_file(plan_file)
    fsync_dir(work)
    return harvested


def _harvest(work: Path, plan: dict) -> PrecomputedEmbeddings | None:
    keys, vectors = [], []
    for file in sorted(work.glob("shard-*.npz")):
        shard = _load_shard(file)
        if shard is not None:
            keys.append(shard[0])
            vectors.append(shard[1])
    if not keys or len({v.shape[1] for v in vectors}) != 1:
        return None
    meta = {"embedder": plan["embedder"], "revision": plan["revision"]}
    return PrecomputedEmbeddings(np.concatenate(keys), np.concatenate(vectors), meta)


def _save_shard(file: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, keys=keys, vectors=np.ascontiguousarray(vectors, dtype=np.float32))
    write_bytes_atomic(file, buffer.getvalue())


def _load_shard(file: Path, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(keys, vectors) of a finished shard; None if absent, unreadable or not for ``keys``."""
    if not file.exists():
        return None
    try:
        with np.load(file, allow_pickle=False) as archive:
            stored, vectors = archive["keys"], archive["vectors"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if vectors.ndim != 2 or vectors.dtype != np.float32 or stored.shape != (len(vectors), 16):
        return None
    if keys is not None and not np.array_equal(stored, keys):
        return None
    return stored, vectors


def _text_keys(texts: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(text_digest(t) for t in texts), np.uint8).reshape(-1, 16)


def _embed_resumable(
    chunks: list[Chunk],
    config: BuildConfig,
    plan: dict,
    work: Path,
    precomputed: PrecomputedEmbeddings | None,
) -> tuple[np.ndarray, Embedder | None, dict]:
    """(N, d) float32 embeddings of all chunks, reusing finished shards in ``work``.

    Each shard's vectors come, in this order, from: its finished file (same plan); the
    finished shards of an earlier plan with the same embedder (by text); ``precomputed``
    (by text, if made with the same embedder); the embedder itself, here or, with
    ``config.ray``, on a Ray cluster (each shard saved as soon as its vectors arrive).
    """
    harvested = _prepare_work(work, plan)
    sources = [
        (source, name)
        for source, name in ((harvested, "reused"), (precomputed, "precomputed"))
        if source is not None and source.matches(plan["embedder"], plan["revision"])
    ]
    shards = _shards(chunks, config.shard_size)
    files = [work / f"shard-{i:05d}.npz" for i in range(len(shards))]
    keys = [_text_keys([chunks[j].text for j in ids]) for ids in shards]
    done = [_load_shard(f, k) for f, k in zip(files, keys, strict=True)]
    done = [None if shard is None else shard[1] for shard in done]
    stats = {"chunks_reused": sum(len(v) for v in done if v is not None), "chunks_precomputed": 0}
    encoder = _LazyEncoder(config.embedder, config.batch_size)
    with _bar(
        config.show_progress, len(chunks), "embedding", "seq", initial=stats["chunks_reused"]
    ) as bar:
        pending: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}  # for Ray
        for i, ids in enumerate(shards):
            if done[i] is None:
                texts = [chunks[j].text for j in ids]
                if config.ray:
                    vectors, todo = _from_sources(texts, sources, stats, bar.update)
                    if len(todo):
                        pending[i] = (vectors, todo)
                        continue
                    done[i] = vectors
                else:
                    done[i] = _embed_shard(texts, sources, encoder, stats, bar.update)
                _save_shard(files[i], keys[i], done[i])
        if pending:
            from siftlm.datastore.ray_embed import embed_pending

            for i, vectors in embed_pending(pending, chunks, shards, config, plan, bar.update):
                done[i] = vectors
                _save_shard(files[i], keys[i], vectors)
    dims = {array.shape[1] for array in done}
    if len(dims) != 1:
        raise ValueError(f"shards disagree on the embedding dimension: {sorted(dims)}")
    out = np.empty((len(chunks), dims.pop()), np.float32)
    for ids, array in zip(shards, done, strict=True):
        out[ids] = array
    stats["chunks_embedded"] = len(chunks) - stats["chunks_reused"] - stats["chunks_precomputed"]
    return out, encoder.loaded, stats


class _LazyEncoder:
    """The build's embedder, loaded on first use (a build that needs none loads none)."""

    def __init__(self, spec: str | Embedder, batch_size: int):
        self.loaded: Embedder | None = None if isinstance(spec, str) else spec
        self.spec = spec
        self.batch_size = batch_size

    def __call__(self, texts: list[str], progress) -> np.ndarray:
        if self.loaded is None:
            self.loaded = load_embedder(self.spec)
        return self.loaded.encode(texts, self.batch_size, progress=progress)


def _embed_shard(texts: list[str], sources, encoder: _LazyEncoder, stats: dict, progress):
    """(len(texts), d) float32: from the ``sources`` (by text) where they have it, else encoded."""
    vectors, todo = _from_sources(texts, sources, stats, progress)
    if len(todo):
        fresh = encoder([texts[j] for j in todo], progress)
        if vectors is None:
            vectors = np.empty((len(texts), fresh.shape[1]), np.float32)
        vectors[todo] = fresh
    return vectors


def _from_sources(texts: list[str], sources, stats: dict, progress):
    """(vectors or None, positions still to embed): what the ``sources`` hold, by text."""
    vectors: np.ndarray | None = None
    found = np.zeros(len(texts), bool)
    for source, name in sources:
        known, hit = source.lookup(texts)
        new = hit & ~found
        if vectors is None:
            vectors = known
        vectors[new] = known[new]
        found |= new
        stats[f"chunks_{name}"] += int(new.sum())
        progress(int(new.sum()))
    return vectors, np.flatnonzero(~found)
