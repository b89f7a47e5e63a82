"""Confirmation of the best learning-rate schedule of ``sweep_schedules.py`` on FRESH
validation documents (issue 11), before it may replace the defaults.

    python benchmarks/confirm_schedule.py run --rank 0 --world-size 2 &   # resumable
    python benchmarks/confirm_schedule.py run --rank 1 --world-size 2
    python benchmarks/confirm_schedule.py summarize   # -> sweep/heldout/confirm/summary.md

The candidate, ``SCHEDULE``: lr 3e-4 where σ²_n/σ²_0 <= 0.2, lr 1e-4 where <= 0.3, the
base model above (``lr=1e-4, variance_gate=0.3, variance_lr=("0.2:3e-4",)``). It was
found on the sweep's 28 documents after the sweep had chosen the defaults (lr 3e-4, gate
0.2), so it is checked on the next 2 validation documents of every domain (``skip_docs =
2``: 28 documents that no choice has seen), standard memory and leave-one-domain-out,
base, nn and sift.

The defaults need no run of their own: a prompt with σ²_n/σ²_0 <= 0.2 trains with lr
3e-4 under both (the same result, bitwise: training is deterministic per prompt), one
above 0.3 is answered by the base model under both, and one in between is trained by the
candidate and answered by the base model under the defaults. So the candidate's run
gives both.

The rule, fixed before the run (the sweep's, ``benchmarks/sweep.py``): the candidate
replaces the defaults if, on these documents, it is admissible (nn and sift <= 100 % of
base under leave-one-domain-out in aggregate and <= 101 % on every domain) and its mean
in-domain bpb over nn and sift (% of base) is lower than the defaults'.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "sweep" / "heldout" / "confirm"
PROTOCOLS = {"in-domain": None, "lodo": "same-domain"}
METHODS = ("nn", "sift")
SCHEDULE = {"lr": 1e-4, "variance_gate": 0.3, "variance_lr": ("0.2:3e-4",)}
DEFAULT_GATE, SKIP, DOCS = 0.2, 2, 2


def config(protocol: str, rank: int, world_size: int):
    from siftlm.bench import BenchConfig

    return BenchConfig(
        model="house-small",
        split="validation",
        skip_docs=SKIP,
        docs_per_domain=DOCS,
        methods=("base", *METHODS),
        curve_methods=(),
        exclude=PROTOCOLS[protocol],
        out=str(OUT / protocol),
        rank=rank,
        world_size=world_size,
        progress=False,
        **SCHEDULE,
    )


def run(args: argparse.Namespace) -> None:
    import torch

    from siftlm.bench import run_bench
    from siftlm.bench.runner import open_store
    from siftlm.models import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model("house-small")
    store = open_store(None)
    for protocol in PROTOCOLS:
        print(f"== {protocol} (worker {args.rank}/{args.world_size})", file=sys.stderr)
        run_bench(
            config(protocol, args.rank, args.world_size),
            model=model,
            tokenizer=tokenizer,
            store=store,
        )


def _ratios(results: dict, base: dict, keep) -> tuple[float, dict]:
    """(aggregate, per domain) bits over base's; ``keep(r)`` False: base answers."""
    nll, base_nll = defaultdict(float), defaultdict(float)
    for doc_id, r in results.items():
        nll[r.domain] += r.nll_nats if keep(r) else base[doc_id].nll_nats
        base_nll[r.domain] += base[doc_id].nll_nats
    return sum(nll.values()) / sum(base_nll.values()), {d: nll[d] / base_nll[d] for d in nll}


def summarize(_: argparse.Namespace) -> None:
    from siftlm.bench import load_results

    rows = {}
    for protocol in PROTOCOLS:
        found = load_results(OUT / protocol)
        base = {r.doc_id: r for r in found["base"]}
        for method in METHODS:
            results = {r.doc_id: r for r in found[method]}
            if len(results) < len(base):
                raise SystemExit(f"{protocol}/{method}: {len(results)} of {len(base)} documents")
            for name, keep in (
                ("candidate", lambda r: True),
                ("defaults", lambda r: r.posterior_variance <= DEFAULT_GATE * r.prior_variance),
            ):
                rows[(name, protocol, method)] = _ratios(results, base, keep)
    verdict = {}
    for name in ("candidate", "defaults"):
        lodo = [rows[(name, "lodo", m)] for m in METHODS]
        verdict[name] = {
            "admissible": all(a <= 1.0 and max(d.values()) <= 1.01 for a, d in lodo),
            "in-domain": float(np.mean([rows[(name, "in-domain", m)][0] for m in METHODS])),
        }
    candidate, defaults = verdict["candidate"], verdict["defaults"]
    adopt = candidate["admissible"] and candidate["in-domain"] < defaults["in-domain"]
    lines = [
        "# Confirmation of the lr schedule on fresh validation documents",
        "",
        f"{len(base)} validation documents (numbers {SKIP + 1}-{SKIP + DOCS} of every domain)."
        " Made by `python benchmarks/confirm_schedule.py summarize`; rule in its docstring."
        " % of base bpb; worst = worst domain under leave-one-domain-out.",
        "",
        "| procedure | in-domain nn | in-domain sift | lodo nn | lodo sift | worst lodo nn "
        "| worst lodo sift | admissible |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, label in (("defaults", "defaults (lr 3e-4, gate 0.2)"), ("candidate", "schedule")):
        cells = [rows[(name, p, m)][0] for p in PROTOCOLS for m in METHODS]
        cells += [max(rows[(name, "lodo", m)][1].values()) for m in METHODS]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{100 * c:.1f}%" for c in cells)
            + f" | {'yes' if verdict[name]['admissible'] else 'no'} |"
        )
    lines += ["", f"**Verdict**: {'adopt the schedule' if adopt else 'keep the defaults'}."]
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")
    (OUT / "summary.json").write_text(json.dumps({"verdict": verdict, "adopt": adopt}, indent=2))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--rank", type=int, default=0)
    go.add_argument("--world-size", type=int, default=1)
    sub.add_parser("summarize")
    args = parser.parse_args()
    {"run": run, "summarize": summarize}[args.command](args)


if __name__ == "__main__":
    main()
