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
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.datastore.chunking import (
    DEFAULT_TOKENIZER,
    Chunk,
    chunk_documents,
    default_max_tokens,
    load_tokenizer,
    tokenizer_checksum,
    tokenizer_name,
)
from siftlm.datastore.embedders import DEFAULT_EMBEDDER, Embedder, describe_spec, load_embedder
from siftlm.datastore.factory import check_spec
from siftlm.datastore.files import fsync_dir, fsync_file, sha256_file, write_bytes_atomic
from siftlm.datastore.index import INDEX_KINDS, build_index, index_kind, tune_recall, write_index
from siftlm.datastore.ingest import Fields, describe_source, read_documents
from siftlm.datastore.precomputed import PrecomputedEmbeddings, text_digest
from siftlm.datastore.store import (
    CHUNKS_FILE,
    DATA_FILES,
    EMBEDDINGS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    Manifest,
)

DTYPES = ("float16", "float32")
DEFAULT_SHARD_SIZE = 512


def work_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.work"


def build_store(
    source: Any,
    path: str | Path,
    *,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    tokenizer: Any = DEFAULT_TOKENIZER,
    max_tokens: int | None = None,
    index: str = "flat",
    dtype: str = "float16",
    batch_size: int = 32,
    show_progress: bool = True,
    text_field: str = "text",
    id_field: str = "id",
    domain_field: str = "domain",
    split: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    precomputed: Any = "auto",
    recall_target: float = 0.95,
    ray: bool | str = False,
) -> tuple[Path, Embedder | None]:
    """Build the store for ``source`` at ``path``; returns the path and the embedder if loaded.

    ``source``: ``"minipile"`` (the embedded memory split), a list of documents, a
    JSONL/Parquet file, a folder of text files, or a saved ``datasets`` dataset.
    ``embedder``: a spec (see :func:`load_embedder`) or an embedder object.
    ``tokenizer``: the language model's tokenizer (name, folder or object); chunks have
    at most ``max_tokens`` of its tokens (default: its maximum length).
    ``precomputed``: a :class:`~siftlm.datastore.precomputed.PrecomputedEmbeddings` whose
    vectors are used for the chunks it holds (matched by text), if it was made with the
    same embedder; ``"auto"``: the shipped file for the embedded corpus; None: embed all.
    ``ray``: embed the missing shards on a Ray cluster (:mod:`siftlm.datastore.ray_embed`):
    True for ``ray.init()``'s default, or the cluster's address; False: in this process.
    """
    if index not in INDEX_KINDS:
        check_spec(index)  # a Faiss factory string: fail now, not after embedding
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError("batch_size and shard_size must be positive")
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    with _lock(target):
        tok = load_tokenizer(tokenizer)
        limit = int(max_tokens) if max_tokens else default_max_tokens(tok)
        fields = Fields(text=text_field, id=id_field, domain=domain_field)
        documents = read_documents(source, fields, split)
        if not documents:
            raise ValueError(f"source {describe_source(source)} holds no documents")
        clock = time.perf_counter()
        with _bar(show_progress, len(documents), "chunking", "doc") as bar:
            chunks = chunk_documents(documents, tok, limit, progress=bar.update)
        timings["chunking_s"] = time.perf_counter() - clock
        if not chunks:
            raise ValueError(f"source {describe_source(source)} holds no text")

        name, revision = describe_spec(embedder)
        if isinstance(precomputed, str) and precomputed == "auto":
            precomputed = _shipped_for(source)
        plan = {
            "embedder": name,
            "revision": revision,
            "tokenizer": tokenizer_checksum(tok),
            "max_tokens": limit,
            "shard_size": shard_size,
            "chunks": _chunks_digest(chunks),
            # shards filled from precomputed vectors must not count as fresh ones
            "precomputed": None if precomputed is None else dict(precomputed.meta),
        }
        clock = time.perf_counter()
        vectors, loaded, stats = _embed_resumable(
            chunks,
            embedder,
            plan,
            work_dir(target),
            batch_size,
            shard_size,
            show_progress,
            precomputed,
            ray,
        )
        timings["embedding_s"] = time.perf_counter() - clock
        embedder_info = {"name": name, "revision": revision, "dim": int(vectors.shape[1])}

        clock = time.perf_counter()
        stored = vectors.astype(dtype)
        # the index holds exactly the stored (possibly float16-rounded) vectors, so that a
        # search's scores are the inner products with the embeddings it returns
        searchable = stored.astype(np.float32)
        faiss_index = build_index(searchable, index)
        recall = tune_recall(faiss_index, searchable, target=recall_target)
        timings["indexing_s"] = time.perf_counter() - clock

        manifest = Manifest(
            embedder=embedder_info,
            tokenizer={"name": tokenizer_name(tokenizer, tok), "checksum": plan["tokenizer"]},
            chunking={"max_tokens": limit, "special_tokens": False},
            index={
                "kind": index_kind(faiss_index) if index in INDEX_KINDS else index,
                "recall_check": recall.as_dict(),
            },
            dtype=dtype,
            counts=_counts(documents, chunks),
            source=describe_source(source),
            build={
                **{key: round(value, 2) for key, value in timings.items()},
                **stats,
                "total_s": round(time.perf_counter() - started, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "siftlm": _version(),
            },
        )
        _write_store(target, chunks, stored, faiss_index, manifest)
        shutil.rmtree(work_dir(target), ignore_errors=True)
    return target, loaded


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
    embedder: str | Embedder,
    plan: dict,
    work: Path,
    batch_size: int,
    shard_size: int,
    show_progress: bool,
    precomputed: PrecomputedEmbeddings | None,
    ray: bool | str = False,
) -> tuple[np.ndarray, Embedder | None, dict]:
    """(N, d) float32 embeddings of all chunks, reusing finished shards in ``work``.

    Each shard's vectors come, in this order, from: its finished file (same plan); the
    finished shards of an earlier plan with the same embedder (by text); ``precomputed``
    (by text, if made with the same embedder); the embedder itself, here or, with ``ray``,
    on a Ray cluster (each shard saved as soon as its vectors arrive).
    """
    harvested = _prepare_work(work, plan)
    sources = [
        (source, name)
        for source, name in ((harvested, "reused"), (precomputed, "precomputed"))
        if source is not None and source.matches(plan["embedder"], plan["revision"])
    ]
    shards = _shards(chunks, shard_size)
    files = [work / f"shard-{i:05d}.npz" for i in range(len(shards))]
    keys = [_text_keys([chunks[j].text for j in ids]) for ids in shards]
    done = [_load_shard(f, k) for f, k in zip(files, keys, strict=True)]
    done = [None if shard is None else shard[1] for shard in done]
    stats = {"chunks_reused": sum(len(v) for v in done if v is not None), "chunks_precomputed": 0}
    loaded: Embedder | None = None if isinstance(embedder, str) else embedder
    with _bar(
        show_progress, len(chunks), "embedding", "seq", initial=stats["chunks_reused"]
    ) as bar:
        pending: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}  # for Ray
        for i, ids in enumerate(shards):
            if done[i] is not None:
                continue
            texts = [chunks[j].text for j in ids]
            vectors: np.ndarray | None = None
            found = np.zeros(len(ids), bool)
            for source, name in sources:
                known, hit = source.lookup(texts)
                new = hit & ~found
                if vectors is None:
                    vectors = known
                vectors[new] = known[new]
                found |= new
                stats[f"chunks_{name}"] += int(new.sum())
                bar.update(int(new.sum()))
            if not found.all() and ray:
                pending[i] = (vectors, np.flatnonzero(~found))
                continue
            if not found.all():
                if loaded is None:
                    loaded = load_embedder(embedder)
                todo = np.flatnonzero(~found)
                fresh = loaded.encode([texts[j] for j in todo], batch_size, progress=bar.update)
                if vectors is None:
                    vectors = np.empty((len(ids), fresh.shape[1]), np.float32)
                vectors[todo] = fresh
            _save_shard(files[i], keys[i], vectors)
            done[i] = vectors
        if pending:
            from siftlm.datastore.ray_embed import embed_shards

            jobs = {
                i: [chunks[shards[i][j]].text for j in todo] for i, (_, todo) in pending.items()
            }
            for i, fresh in embed_shards(jobs, embedder, plan, batch_size, ray, show_progress):
                vectors, todo = pending.pop(i)
                if vectors is None:
                    vectors = np.empty((len(shards[i]), fresh.shape[1]), np.float32)
                vectors[todo] = fresh
                _save_shard(files[i], keys[i], vectors)
                done[i] = vectors
                bar.update(len(todo))
            if pending:
                raise RuntimeError(
                    f"Ray returned no vectors for shards {sorted(pending)}; run the build "
                    "again: it resumes with them"
                )
    dims = {array.shape[1] for array in done}
    if len(dims) != 1:
        raise ValueError(f"shards disagree on the embedding dimension: {sorted(dims)}")
    out = np.empty((len(chunks), dims.pop()), np.float32)
    for ids, array in zip(shards, done, strict=True):
        out[ids] = array
    stats["chunks_embedded"] = len(chunks) - stats["chunks_reused"] - stats["chunks_precomputed"]
    return out, loaded, stats


def _counts(documents, chunks: list[Chunk]) -> dict:
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


def _write_store(target: Path, chunks: list[Chunk], stored: np.ndarray, index, manifest) -> None:
    import pyarrow as pa

    stage = target.parent / f".{target.name}.tmp-{os.getpid()}"
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by killed builds (we hold the lock)
    stage.mkdir()
    table = pa.table(
        {
            "doc_id": pa.array([c.doc_id for c in chunks], pa.string()),
            "domain": pa.array([c.domain for c in chunks], pa.string()),
            "chunk": pa.array([c.index for c in chunks], pa.int32()),
            "n_tokens": pa.array([c.n_tokens for c in chunks], pa.int32()),
            "text": pa.array([c.text for c in chunks], pa.large_string()),
        }
    )
    with pa.OSFile(str(stage / CHUNKS_FILE), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    np.save(stage / EMBEDDINGS_FILE, stored, allow_pickle=False)
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
    # swap: the old store (if any) is moved aside, the new one renamed in, the old deleted
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.rename(target, old)
    os.rename(stage, target)
    fsync_dir(target.parent)
    for previous in target.parent.glob(f".{target.name}.old-*"):  # ours, and any a crash left
        shutil.rmtree(previous, ignore_errors=True)
