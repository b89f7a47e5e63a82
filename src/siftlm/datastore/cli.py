"""``siftlm index build|info|search``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_SOURCE = "minipile"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"  # = siftlm.datastore.embedders.DEFAULT_EMBEDDER
STORES = Path("stores")


def default_store_path(source: str = DEFAULT_SOURCE, embedder: str = DEFAULT_EMBEDDER) -> Path:
    """``stores/<source>-<embedder>``, e.g. ``stores/minipile-all-MiniLM-L6-v2``."""
    source_name = source.partition(":")[0] if source.startswith("minipile") else Path(source).name
    if source.startswith("minipile:") and source != "minipile:memory":
        source_name = source.replace(":", "-")
    embedder_name = Path(embedder.removeprefix("causal:").rstrip("/")).name
    stem = source_name.split(".")[0] or "store"
    return STORES / f"{stem}-{embedder_name}"


def register(subparsers) -> None:
    index = subparsers.add_parser(
        "index", help="build, inspect and search a datastore", description=__doc__
    )
    commands = index.add_subparsers(dest="index_command", metavar="ACTION")
    index.set_defaults(func=lambda args: index.print_help() or 2)

    build = commands.add_parser(
        "build",
        help="chunk, embed and index a corpus into a store folder",
        description="Chunk, embed and index a corpus. Resumable: rerun after an interruption.",
    )
    build.add_argument(
        "source",
        nargs="?",
        default=DEFAULT_SOURCE,
        help="'minipile' (the embedded memory split; 'minipile:<split>' for another), a "
        ".jsonl/.parquet file, a folder of .txt files, or a saved datasets folder "
        "(default: minipile)",
    )
    build.add_argument(
        "-o", "--out", type=Path, help="store folder (default: stores/<source>-<embedder>)"
    )
    build.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        help="sentence-transformers name/path, or causal:<path>",
    )
    build.add_argument(
        "--tokenizer", default="models/house-small", help="the LM's tokenizer (name or folder)"
    )
    build.add_argument(
        "--max-tokens", type=int, help="tokens per chunk (default: the tokenizer's maximum length)"
    )
    build.add_argument(
        "--index",
        default="flat",
        help="flat (exact, default), ivf, hnsw, or any Faiss factory string, e.g. 'HNSW32', "
        "'IVF4096,PQ64', 'OPQ16,IVF1024,PQ16' (trained on a sample; its recall is measured)",
    )
    build.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument("--shard-size", type=int, default=512, help="chunks per resumable shard")
    build.add_argument("--text-field", default="text")
    build.add_argument("--id-field", default="id")
    build.add_argument("--domain-field", default="domain")
    build.add_argument("--split", help="split of a saved DatasetDict")
    build.add_argument(
        "--no-precomputed",
        dest="precomputed",
        action="store_false",
        help="embed everything, ignoring the shipped precomputed embeddings",
    )
    build.add_argument("--no-progress", dest="progress", action="store_false")
    build.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help="embed on a Ray cluster with Ray Data (an actor per GPU, or per CPU but one): "
        "at ADDRESS, or by ray.init()'s default (RAY_ADDRESS or a new local instance); "
        "needs siftlm[ray]",
    )
    build.set_defaults(func=_build)

    precompute = commands.add_parser(
        "precompute",
        help="regenerate the shipped precomputed embeddings of the embedded corpus",
        description="Embed the memory split from scratch (a full, resumable build without the "
        "shipped vectors, into --out) and write its vectors to data/embeddings/. With "
        "--incremental, only chunks that the shipped file lacks are embedded.",
    )
    precompute.add_argument("-o", "--out", type=Path, help="store folder (default: the usual one)")
    precompute.add_argument("--file", type=Path, help="embeddings file (default: the shipped one)")
    precompute.add_argument("--tokenizer", default="models/house-small")
    precompute.add_argument("--batch-size", type=int, default=32)
    precompute.add_argument(
        "--incremental",
        action="store_true",
        help="keep the shipped vectors of unchanged chunks; embed only new or edited ones",
    )
    precompute.add_argument("--no-progress", dest="progress", action="store_false")
    precompute.set_defaults(func=_precompute)

    info = commands.add_parser("info", help="manifest, counts per domain and sizes of a store")
    info.add_argument(
        "store", nargs="?", type=Path, help="store folder (default: the embedded corpus's)"
    )
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the SHA-256 checks"
    )
    info.set_defaults(func=_info)

    search = commands.add_parser("search", help="nearest chunks to a text")
    search.add_argument("text", nargs="+", help="query text(s); each is one query")
    search.add_argument("-k", type=int, default=5, help="neighbours per query (default 5)")
    search.add_argument(
        "--store", type=Path, help="store or shards folder (default: the embedded corpus's)"
    )
    search.add_argument("--width", type=int, default=160, help="characters of each neighbour shown")
    search.add_argument(
        "--mmap", action="store_true", help="map the index from its file instead of loading it"
    )
    search.set_defaults(func=_search)

    shards = commands.add_parser(
        "shards",
        help="join stores built with the same embedder into one store searched as one",
        description="Write OUT/shards.json listing the stores; OUT is then a store folder for "
        "`index search --store` and `bench --store` (chunk ids run through the shards in order).",
    )
    shards.add_argument("out", type=Path, help="folder for shards.json")
    shards.add_argument("stores", nargs="+", type=Path, help="the shards' store folders")
    shards.set_defaults(func=_shards)


def _build(args: argparse.Namespace) -> int:
    from siftlm.datastore.build import build_store
    from siftlm.datastore.store import Datastore

    out = args.out or default_store_path(args.source, args.embedder)
    started = time.perf_counter()
    path, _ = build_store(
        args.source,
        out,
        embedder=args.embedder,
        tokenizer=args.tokenizer,
        max_tokens=args.max_tokens,
        index=args.index,
        dtype=args.dtype,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        show_progress=args.progress,
        text_field=args.text_field,
        id_field=args.id_field,
        domain_field=args.domain_field,
        split=args.split,
        precomputed="auto" if args.precomputed else None,
        ray=args.ray,
    )
    store = Datastore.open(path, verify=False)
    build = store.manifest.build
    print(
        f"built {path}: {len(store)} chunks of <= {store.manifest.chunking['max_tokens']} tokens "
        f"from {store.manifest.counts['documents']} documents in {time.perf_counter() - started:.1f} s "
        f"(embedded {build['chunks_embedded']}, reused {build['chunks_reused']}, "
        f"precomputed {build['chunks_precomputed']})"
    )
    return 0


def _precompute(args: argparse.Namespace) -> int:
    from siftlm.datastore.build import build_store
    from siftlm.datastore.precomputed import SHIPPED, export_store
    from siftlm.datastore.store import Datastore

    path, _ = build_store(
        DEFAULT_SOURCE,
        args.out or default_store_path(),
        embedder=DEFAULT_EMBEDDER,
        tokenizer=args.tokenizer,
        batch_size=args.batch_size,
        show_progress=args.progress,
        precomputed="auto" if args.incremental else None,
    )
    target = args.file or SHIPPED
    count = export_store(Datastore.open(path), target)
    print(f"wrote {count} embeddings to {target} (from the store {path})")
    return 0


def _open(path: Path | None, verify: bool = True):
    from siftlm.datastore.store import Datastore

    return Datastore.open(path or default_store_path(), verify=verify)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _info(args: argparse.Namespace) -> int:
    store = _open(args.store, verify=args.verify)
    manifest = store.manifest
    if args.json:
        print(json.dumps(manifest.as_dict(), indent=2, sort_keys=True))
        return 0
    counts = manifest.counts
    out = sys.stdout
    print(f"store       {store.path}", file=out)
    print(f"verified    {'sizes and SHA-256 of every file' if args.verify else 'sizes only'}")
    print(f"source      {manifest.source}")
    emb = manifest.embedder
    print(
        f"embedder    {emb['name']} (revision {emb['revision']}, dim {emb['dim']}, stored as {manifest.dtype})"
    )
    print(f"tokenizer   {manifest.tokenizer['name']} ({manifest.tokenizer['checksum']})")
    print(f"chunking    at most {manifest.chunking['max_tokens']} tokens per chunk")
    recall = manifest.index.get("recall_check", {})
    print(
        f"index       {manifest.index['kind']} (recall@{recall.get('k')} vs exact: "
        f"{recall.get('recall')} on {recall.get('queries')} queries)"
    )
    print(
        f"counts      {counts['chunks']} chunks, {counts['documents']} documents, "
        f"{counts['tokens']} tokens, {_size(counts['text_bytes'])} of text"
    )
    build = manifest.build
    print(
        f"build       {build.get('total_s')} s (chunking {build.get('chunking_s')} s, embedding "
        f"{build.get('embedding_s')} s, index {build.get('indexing_s')} s); "
        f"embedded {build.get('chunks_embedded')}, reused {build.get('chunks_reused')}, "
        f"precomputed {build.get('chunks_precomputed')}; {build.get('created')}"
    )
    print("\nper domain        chunks   share  documents")
    docs = counts.get("documents_per_domain", {})
    for domain, n in sorted(counts["domains"].items(), key=lambda item: -item[1]):
        share = n / max(1, counts["chunks"])
        print(f"  {domain:<16}{n:>7}  {share:6.1%}  {docs.get(domain, 0):>9}")
    print("\nfiles")
    total = 0
    for name, entry in sorted(manifest.files.items()):
        total += entry["bytes"]
        print(f"  {name:<16}{_size(entry['bytes']):>10}  sha256 {entry['sha256'][:16]}")
    print(f"  {'total':<16}{_size(total):>10}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from siftlm.datastore.sharded import open_any

    store = open_any(args.store or default_store_path(), verify=False, mmap=args.mmap)
    queries = store.embed(args.text)
    result = store.search(queries, args.k)
    for q, text in enumerate(args.text):
        print(f"query {q}: {text!r}")
        for rank in range(result.ids.shape[1]):
            snippet = " ".join(result.texts[q][rank].split())
            if len(snippet) > args.width:
                snippet = snippet[: args.width - 3] + "..."
            print(
                f"  {rank + 1:>2}. score {result.scores[q, rank]:.4f}  {result.domains[q][rank]:<12} "
                f"{result.doc_ids[q][rank]} #{int(result.ids[q, rank])}\n      {snippet}"
            )
    return 0


def _shards(args: argparse.Namespace) -> int:
    from siftlm.datastore.sharded import ShardedDatastore

    ShardedDatastore.create(args.out, args.stores)
    store = ShardedDatastore.open(args.out, verify=False)
    print(f"{args.out}: {len(store.stores)} shards, {len(store)} chunks")
    return 0
