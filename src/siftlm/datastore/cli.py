"""``siftlm index build|precompute|info|search``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from siftlm.datastore.chunking import DEFAULT_TOKENIZER
from siftlm.defaults import (  # noqa: F401 - default_store_path: its old home
    DEFAULT_EMBEDDER,
    DEFAULT_SOURCE,
    HOUSE_TOKENIZER,
    default_store_path,
)


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per :class:`BuildConfig` field (its help; its ``cli`` metadata)."""
    from siftlm.datastore.config import BuildConfig

    for spec in dataclasses.fields(BuildConfig):
        cli = dict(spec.metadata["cli"])
        flag = cli.pop("flag", "--" + spec.name.replace("_", "-"))
        help_text = cli.pop("help", spec.metadata["help"])
        if "action" not in cli and spec.default is not None:
            help_text += f" (default: {spec.default})"
        parser.add_argument(flag, dest=spec.name, default=spec.default, help=help_text, **cli)


def config_from(args: argparse.Namespace):
    """The :class:`BuildConfig` of ``siftlm index build``'s parsed options."""
    from siftlm.datastore.config import BuildConfig

    return BuildConfig(
        **{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(BuildConfig)}
    )


def register(subparsers) -> None:
    index = subparsers.add_parser(
        "index",
        help="build, inspect and search a datastore",
        description="Datastores: build (chunk, embed, index a corpus), precompute (regenerate "
        "the shipped embeddings), info (what a store holds) and search (nearest chunks to a text).",
    )
    commands = index.add_subparsers(dest="index_command", metavar="ACTION")
    index.set_defaults(func=lambda args: index.print_help() or 2)

    _add_build(commands)
    _add_precompute(commands)
    _add_info_and_search(commands)


def _add_build(commands) -> None:
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
    add_build_options(build)
    build.set_defaults(func=_build)


def _add_precompute(commands) -> None:
    precompute = commands.add_parser(
        "precompute",
        help="regenerate the shipped precomputed embeddings of the embedded corpus",
        description="Embed the memory split from scratch (a full, resumable build without the "
        "shipped vectors, into --out) and write its vectors to data/embeddings/. With "
        "--incremental, only chunks that the shipped file lacks are embedded.",
    )
    precompute.add_argument("-o", "--out", type=Path, help="store folder (default: the usual one)")
    precompute.add_argument("--file", type=Path, help="embeddings file (default: the shipped one)")
    precompute.add_argument(
        "--tokenizer", default=DEFAULT_TOKENIZER, help="the LM's tokenizer (default: %(default)s)"
    )
    precompute.add_argument("--batch-size", type=int, default=32)
    precompute.add_argument(
        "--incremental",
        action="store_true",
        help="keep the shipped vectors of unchanged chunks; embed only new or edited ones",
    )
    precompute.add_argument("--no-progress", dest="progress", action="store_false")
    precompute.set_defaults(func=_precompute)


def _add_info_and_search(commands) -> None:
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
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the SHA-256 checks (sizes are always checked)",
    )
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
    path, _ = build_store(args.source, out, config_from(args))
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

    store = open_any(args.store or default_store_path(), verify=args.verify, mmap=args.mmap)
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
