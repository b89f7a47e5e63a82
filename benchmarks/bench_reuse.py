"""Test-time training with and without gradient reuse, timed in one process, interleaved.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_reuse.py --docs 3 --repeats 2 \\
        --store /work/main/stores/minipile-all-MiniLM-L6-v2 > benchmarks/results/bench_reuse.md

The ablation (benchmarks/ablate/summary.md, "The newest rival") counts passes exactly,
but its training seconds come from runs at other times under other load. Here house-small
evaluates the first document of the first ``--docs`` validation domains with hull and
sift, each with ``gradient_reuse`` None and ``REUSE_ONCE`` (n: a repeated window's
gradient is computed once and reused), under the ablation's ``TRAINING`` (lr 3e-4, no
variance gate, no ``variance_lr``), through ``TestTimeTrainer.evaluate``. The two
conditions of a (document, method) run back to back, their order alternating (A B, then
B A), ``--repeats`` times; an untimed run first loads what a first call loads.

Timings per run: ``timings.train`` (the engine's wall seconds of training) and the CPU
seconds of the whole ``evaluate`` call (``time.process_time``: the prompt's embedding,
search, selection and scoring are the same work in both conditions; CPU time is the
more robust under load). Each run's bits are checked against the ablation's record of
the same (method, condition, document) in benchmarks/ablate/runs/.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ablate_conditions import MODEL, REUSE_ONCE, SPLIT, TRAINING  # noqa: E402

METHODS = ("hull", "sift")
CONDITIONS = (None, REUSE_ONCE)  # gradient_reuse: off, once per window
# the ablation's run folder of each (method, gradient_reuse)
ABLATION_RUN = {
    ("hull", None): "hull",
    ("sift", None): "all",
    ("hull", REUSE_ONCE): "hull-reuse",
    ("sift", REUSE_ONCE): "sift-reuse",
}


def ablation_records(out: Path) -> dict:
    """{(method, gradient_reuse, doc_id): record} of the ablation's runs in ``out``."""
    from ablate_summary import load

    return {
        (method, reuse, doc_id): result.to_dict()
        for (method, reuse), name in ABLATION_RUN.items()
        for doc_id, result in load(out, name, method).items()
    }


def setup(store_path: str, docs: int):
    """(trainers by (method, gradient_reuse), the documents)."""
    from siftlm.bench import BenchConfig, open_store, pick_documents
    from siftlm.models import load_model
    from siftlm.training import TestTimeTrainer

    if not (Path(store_path) / "manifest.json").exists():
        raise SystemExit(f"no datastore at {store_path} (this benchmark builds none): --store")
    store = open_store(store_path)
    model, tokenizer = load_model(MODEL)
    model.eval()
    trainers = {}
    for reuse in CONDITIONS:
        config = BenchConfig(
            model=MODEL, split=SPLIT, docs_per_domain=1, gradient_reuse=reuse, **TRAINING
        )
        for method in METHODS:
            ttt = config.ttt_config(method)
            trainers[method, reuse] = TestTimeTrainer(model, tokenizer, store, ttt)
    return trainers, pick_documents(config)[:docs]


def measure(trainers: dict, documents: list, repeats: int) -> dict:
    """{(method, reuse, doc_id): [(train wall s, CPU s, passes, nll nats), ...]}."""
    first = documents[0]
    trainers[METHODS[0], REUSE_ONCE].evaluate(first.text, doc_id=first.id, domain=first.domain)
    runs: dict = {}
    for repeat in range(repeats):
        for i, document in enumerate(documents):
            for method in METHODS:
                order = CONDITIONS if (repeat + i) % 2 == 0 else CONDITIONS[::-1]
                for reuse in order:
                    start = time.process_time()
                    result = trainers[method, reuse].evaluate(
                        document.text, doc_id=document.id, domain=document.domain
                    )
                    cpu = time.process_time() - start
                    row = (result.timings.train, cpu, result.passes, result.nll_nats)
                    runs.setdefault((method, reuse, document.id), []).append(row)
                    print(f"{repeat} {document.id} {method} {reuse}: {row}", file=sys.stderr)
    return runs


def report(runs: dict, documents: list, ablation: dict) -> list[str]:
    """Per document and cell, then per method: medians over repeats, speed-ups."""
    lines = [
        "| document | method | gradient reuse | passes | train s (wall) | CPU s | bits "
        "| = ablation |",
        "| --- | --- | --- | ---: | --- | --- | ---: | --- |",
    ]
    totals: dict = {}
    for document in documents:
        for method in METHODS:
            for reuse in CONDITIONS:
                rows = runs[method, reuse, document.id]
                walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
                nats = {r[3] for r in rows}
                record = ablation.get((method, reuse, document.id))
                same = "not run" if record is None else str(nats == {record["nll_nats"]})
                if record is not None and nats != {record["nll_nats"]}:
                    same += f" (ablation {record['nll_nats'] / math.log(2):.4f})"
                if len(nats) > 1:
                    same += ", repeats differ"
                bits = " / ".join(f"{value / math.log(2):.4f}" for value in sorted(nats))
                wall = ", ".join(f"{w:.2f}" for w in walls)
                cpu = ", ".join(f"{c:.2f}" for c in cpus)
                lines.append(
                    f"| {document.id} | {method} | {reuse} | {rows[0][2]} | {wall} | {cpu} "
                    f"| {bits} | {same} |"
                )
                total = totals.setdefault((method, reuse), [0, 0.0, 0.0])
                total[0] += rows[0][2] or 0
                total[1] += statistics.median(walls)
                total[2] += statistics.median(cpus)
    n = len(documents)
    lines += [
        "",
        "Per method (per document: mean over documents of the median over repeats):",
        "",
        "| method | passes without / with | train s without / with | speed-up (train wall) "
        "| CPU s without / with | speed-up (CPU, whole evaluate) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method in METHODS:
        off, on = totals[method, None], totals[method, REUSE_ONCE]
        lines.append(
            f"| {method} | {off[0] / n:.1f} / {on[0] / n:.1f} | {off[1] / n:.2f} / "
            f"{on[1] / n:.2f} | {off[1] / on[1]:.2f}x | {off[2] / n:.2f} / {on[2] / n:.2f} "
            f"| {off[2] / on[2]:.2f}x |"
        )
    return lines


def conditions(args: argparse.Namespace, load_start: tuple, load_end: tuple) -> list[str]:
    import torch

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return [
        f"- {MODEL}, {SPLIT}, {args.docs} documents, {args.repeats} repeats per cell, "
        f"gradient reuse None vs {REUSE_ONCE}, training {TRAINING}",
        f"- store {args.store}; commit {commit}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- torch threads {torch.get_num_threads()} (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}), niceness {os.nice(0)}, {os.cpu_count()} CPUs",
        f"- load average (1, 5, 15 min) at start {load_start}, at end {load_end}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=3, help="first document of N domains")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per cell")
    parser.add_argument("--store", default="stores/minipile-all-MiniLM-L6-v2")
    args = parser.parse_args(argv)
    load_start = tuple(round(x, 2) for x in os.getloadavg())
    trainers, documents = setup(args.store, args.docs)
    runs = measure(trainers, documents, args.repeats)
    load_end = tuple(round(x, 2) for x in os.getloadavg())
    lines = ["# Gradient reuse: interleaved timing", "", *conditions(args, load_start, load_end)]
    lines += ["", *report(runs, documents, ablation_records(HERE / "ablate"))]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
