"""The harness's bits per byte (``siftlm eval``) against a ``siftlm bench`` run.

    python benchmarks/harness_vs_bench.py BENCH_DIR [--methods base nn sift]
        [--domains math legal] [--limit N] [--store STORE] [--out runs/harness-vs-bench]

For each method, ``siftlm eval`` runs the ``minipile_<domain>`` tasks with the bench's
own resolved configuration (``BENCH_DIR/config.json``: its ``ttt`` entry of that method,
every TTTConfig field, passed as ``--model_args``), on the first ``--limit`` documents of
each domain (all if omitted), with ``--log_samples``. The bench's bits per byte is then
recomputed over exactly the documents that the harness evaluated (ratio of sums, per
domain), and the two are compared; the exit code is 1 if any relative difference
exceeds ``--rtol`` (1e-6). The harness's own results and samples (with each request's
test-time training facts) are kept under ``--out``. Documents the bench has not
evaluated are an error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _bench_bpb(results, doc_ids: set[str]) -> tuple[float, int]:
    """(bits per byte over ``doc_ids``, documents found) from bench ``DocumentResult``s."""
    mine = [r for r in results if r.doc_id in doc_ids]
    if len(mine) != len(doc_ids):
        missing = sorted(doc_ids - {r.doc_id for r in mine})
        raise ValueError(f"the bench run has no result for {missing[:3]}...")
    nll, n_bytes = sum(r.nll_nats for r in mine), sum(r.n_bytes for r in mine)
    return nll / (math.log(2) * n_bytes), len(mine)


def compare(args: argparse.Namespace) -> list[dict]:
    from siftlm.bench.results import load_results
    from siftlm.data import DOMAINS
    from siftlm.harness.run import run_eval

    bench_dir = Path(args.bench)
    config = json.loads((bench_dir / "config.json").read_text())
    bench = load_results(bench_dir)
    domains = args.domains or list(DOMAINS)
    rows = []
    for method in args.methods:
        model_args = {"pretrained": config["model"], **config["ttt"][method]}
        model_args["method"] = method  # the bench's name ("sift-adaptive", "context", ...)
        if method != "base":
            model_args["store"] = args.store or config.get("store") or config["store_path"]
        argv = [
            "--model_args",
            json.dumps(model_args),
            "--tasks",
            *[f"minipile_{d}" for d in domains],
            "--output_path",
            str(Path(args.out) / method),
            "--log_samples",
        ]
        if args.limit is not None:
            argv += ["--limit", str(args.limit)]
        results = run_eval(argv)
        for domain in domains:
            task = f"minipile_{domain}"
            harness = results["results"][task]["bits_per_byte,none"]
            doc_ids = {sample["doc"]["id"] for sample in results["samples"][task]}
            reference, n_docs = _bench_bpb(bench[method], doc_ids)
            rows.append(
                {
                    "method": method,
                    "domain": domain,
                    "documents": n_docs,
                    "harness": harness,
                    "bench": reference,
                    "relative": abs(harness - reference) / reference,
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", help="a siftlm bench results folder (its --out)")
    parser.add_argument("--methods", nargs="+", default=["base", "nn", "sift"])
    parser.add_argument("--domains", nargs="+", default=None)
    parser.add_argument("--limit", type=int, default=None, help="documents per domain")
    parser.add_argument("--store", default=None, help="datastore (default: the bench's)")
    parser.add_argument("--out", default="runs/harness-vs-bench")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    rows = compare(args)
    print("\n| method | domain | documents | harness bpb | bench bpb | relative difference |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['method']} | {row['domain']} | {row['documents']} | "
            f"{row['harness']:.9f} | {row['bench']:.9f} | {row['relative']:.1e} |"
        )
    worst = max(row["relative"] for row in rows)
    print(f"\nlargest relative difference: {worst:.2e} (tolerance {args.rtol:g})")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
