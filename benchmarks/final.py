"""The final test-split runs of issue 11: three protocols side by side, with the defaults.

    OMP_NUM_THREADS=1 python benchmarks/final.py --rank 0 --world-size 2 &
    OMP_NUM_THREADS=1 python benchmarks/final.py --rank 1 --world-size 2
    python benchmarks/final.py --report

Each protocol is a ``siftlm bench`` folder under ``OUT`` (its own config.json, resumable
results, report):

- ``standard``: every method (``ALL_METHODS``), the whole memory, learning curves of nn
  and sift;
- ``lodo``: leave-one-domain-out (``exclude="same-domain"``), base, nn, sift,
  sift-adaptive;
- ``first-half``: ``query="first-half"`` (adapt to the first half, score the second),
  same methods, with the early stop where the validation sweep kept it.

The documents are taken in rounds of one per domain (``pick_documents``' order), and
every protocol finishes a round before the next starts, so that a run stopped part way
(this machine: about 25 core-minutes a round) holds the same documents in all three.
Equivalent to the three ``siftlm bench`` commands of the README on all documents.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "heldout-test"
SWEEP = Path(__file__).resolve().parent / "sweep" / "heldout" / "sweep.json"
HELD_OUT_METHODS = ("base", "nn", "sift", "sift-adaptive")


def configs(rank: int = 0, world_size: int = 1) -> dict:
    """protocol -> BenchConfig (the package defaults; the early stop per the sweep)."""
    from siftlm.bench import BenchConfig
    from siftlm.bench.config import ALL_METHODS

    sweep = json.loads(SWEEP.read_text()) if SWEEP.exists() else {}
    early_stop = 5 if sweep.get("first_half", {}).get("early_stop") else None
    shared = {"split": "test", "rank": rank, "world_size": world_size, "progress": False}
    return {
        "standard": BenchConfig(
            methods=ALL_METHODS, curve_every=5, out=str(OUT / "standard"), **shared
        ),
        "lodo": BenchConfig(
            methods=HELD_OUT_METHODS,
            curve_methods=(),
            exclude="same-domain",
            out=str(OUT / "lodo"),
            **shared,
        ),
        "first-half": BenchConfig(
            methods=HELD_OUT_METHODS,
            curve_methods=(),
            query="first-half",
            early_stop=early_stop,
            out=str(OUT / "first-half"),
            **shared,
        ),
    }


def run(args: argparse.Namespace) -> None:
    from siftlm.bench import run_bench
    from siftlm.bench.runner import open_store, pick_documents
    from siftlm.data import DOMAINS
    from siftlm.models import load_model

    by_protocol = configs(args.rank, args.world_size)
    first = next(iter(by_protocol.values()))
    model, tokenizer = load_model(first.model)
    store = open_store(first.store)
    documents = pick_documents(first)  # rounds: one document of every domain at a time
    rounds = -(-len(documents) // len(DOMAINS))
    for depth in range(1, rounds + 1):
        for protocol, config in by_protocol.items():
            print(f"== round {depth}/{rounds}: {protocol}", file=sys.stderr, flush=True)
            subset = documents[: depth * len(DOMAINS)]
            run_bench(config, model=model, tokenizer=tokenizer, store=store, documents=subset)


def report(_: argparse.Namespace) -> None:
    from siftlm.bench import make_report

    for protocol in configs():
        folder = OUT / protocol
        if folder.exists():
            make_report(folder)
            print(f"{folder}/report.md")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only (re)make the reports")
    args = parser.parse_args(argv)
    (report if args.report else run)(args)


if __name__ == "__main__":
    main()
