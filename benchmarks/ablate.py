"""Ablations on the VALIDATION split (issue 16, item 3): when does SIFT beat nearest
neighbours? Memory size, duplication injected into the memory, and λ.

    python benchmarks/ablate.py run --rank 0 --world-size 2 &   # two workers share the
    python benchmarks/ablate.py run --rank 1 --world-size 2     # documents; resumable
    python benchmarks/ablate.py summarize                       # -> benchmarks/ablate/

Every condition runs nn and sift with house-small on the first ``DOCS_PER_DOMAIN``
validation documents of every domain (2 x 14 = 28), with the package's defaults
(``TTTConfig``: n, K, λ, Adam, full fine-tuning) EXCEPT the learning rate (``TRAINING``):
one learning rate, 3e-4, for every prompt and method, no variance gate and no learning
rates by variance. The gate answers a prompt whose selection leaves much uncertainty
with the base model, for nn and sift alike, so many prompts would show no difference
between the methods; and ``variance_lr`` would give nn and sift different learning
rates on the same document. With one learning rate only the selection differs (and the
"all" condition is the held-out sweep's in-domain lr3e-4 run: same documents, same
values). Learning curves are off.

Conditions (``CONDITIONS``, in the order they run: the most informative first): base
(once); the whole memory at the default λ ("all", shared by the three ablations); exact
and near copies of 30 % of the memory injected (``BenchConfig.duplicates``; near copies: a
tenth of the words replaced, embedded once and cached in the run's folder); a random ¼
and ½ of the memory (``BenchConfig.memory_fraction``, nested subsets, applied at search
time by the held-out exclusion); λ = 0.01 and 1.0 (nn's picks do not depend on λ, but
its learning rate does through ``variance_lr``, whose variance ratio is computed with λ:
so nn runs there too, unless ``variance_lr`` is off, when nn's "all" results are
shared); last, 10 % duplication (exact, near), which only runs if the rest has
finished. ``--only NAME ...`` runs some conditions.

The summary has one table and one plot per ablation: per condition, nn and sift in % of
base bits (a ratio of sums over documents, paired SE), sift/nn (sift's bits in % of
nn's, paired SE over documents) and the documents where sift beats nn. A condition is
reported on the documents that base, nn and sift have finished (the docs column).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

OUT = Path(__file__).resolve().parent / "ablate"
MODEL = "house-small"
SPLIT = "validation"
DOCS_PER_DOMAIN = 2
METHODS = ("nn", "sift")
# BenchConfig values besides the package's defaults, for every condition
TRAINING: dict = {"variance_gate": None, "variance_lr": None, "lr": 3e-4}


class Condition(NamedTuple):
    """A run folder (``runs/<name>``): BenchConfig overrides and the methods run there;
    ``nn_from``: the folder whose nn results it uses (its own, or a shared one)."""

    name: str
    overrides: dict
    methods: tuple[str, ...] = METHODS
    nn_from: str | None = None


def _lambda_condition(name: str, lambda_: float) -> Condition:
    """sift at another λ; nn too where λ changes its training (``variance_lr``)."""
    from siftlm.bench import BenchConfig

    if BenchConfig(**TRAINING).variance_lr is None:  # nn's run does not depend on λ
        return Condition(name, {"lambda_": lambda_}, ("sift",), nn_from="all")
    return Condition(name, {"lambda_": lambda_})


CONDITIONS: tuple[Condition, ...] = (
    Condition("base", {}, ("base",)),
    Condition("all", {}),
    Condition("dup-exact-30", {"duplicates": 0.3, "duplicate_kind": "exact"}),
    Condition("dup-near-30", {"duplicates": 0.3, "duplicate_kind": "near"}),
    Condition("memory-0.25", {"memory_fraction": 0.25}),
    _lambda_condition("lambda-0.01", 0.01),
    Condition("memory-0.5", {"memory_fraction": 0.5}),
    _lambda_condition("lambda-1", 1.0),
    Condition("dup-exact-10", {"duplicates": 0.1, "duplicate_kind": "exact"}),
    Condition("dup-near-10", {"duplicates": 0.1, "duplicate_kind": "near"}),
)
BY_NAME = {c.name: c for c in CONDITIONS}
# ablation -> (row label, condition) in table order
ABLATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "memory": (("¼", "memory-0.25"), ("½", "memory-0.5"), ("all", "all")),
    "duplication": (
        ("none", "all"),
        ("exact 10 %", "dup-exact-10"),
        ("exact 30 %", "dup-exact-30"),
        ("near 10 %", "dup-near-10"),
        ("near 30 %", "dup-near-30"),
    ),
    "lambda": (("0.01", "lambda-0.01"), ("0.1 (default)", "all"), ("1.0", "lambda-1")),
}
TITLES = {
    "memory": "Memory size (a random fraction of the 30k-chunk memory)",
    "duplication": "Duplication injected into the memory (copies of a random share)",
    "lambda": "SIFT's λ (nn's picks are the top cosines whatever λ)",
}


def bench_config(out: Path, condition: Condition, rank: int = 0, world_size: int = 1, **extra):
    from siftlm.bench import BenchConfig

    values = {
        "model": MODEL,
        "split": SPLIT,
        "docs_per_domain": DOCS_PER_DOMAIN,
        "methods": condition.methods,
        **TRAINING,
        "curve_methods": (),
        "out": str(out / "runs" / condition.name),
        "rank": rank,
        "world_size": world_size,
        "progress": False,
    }
    return BenchConfig(**{**values, **condition.overrides, **extra})


def run(args: argparse.Namespace) -> None:
    import time

    import torch

    from siftlm.bench import open_store, run_bench
    from siftlm.models import load_model

    torch.set_num_threads(args.threads)
    names = args.only or [c.name for c in CONDITIONS]
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"unknown conditions {unknown}; choose from {', '.join(BY_NAME)}")
    extra = {"domains": tuple(args.domains)} if args.domains else {}
    if extra and Path(args.out).resolve() == OUT:
        raise SystemExit("--domains is for trial runs: pass another --out")
    model, tokenizer = load_model(MODEL)
    store = open_store(args.store)
    for condition in (c for c in CONDITIONS if c.name in names):
        print(f"== {condition.name} (worker {args.rank}/{args.world_size})", file=sys.stderr)
        config = bench_config(Path(args.out), condition, args.rank, args.world_size, **extra)
        start = time.perf_counter()
        run_bench(config, model=model, tokenizer=tokenizer, store=store)
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def _load(out: Path, folder: str, method: str) -> dict:
    """doc_id -> result of ``method`` in ``runs/<folder>`` ({} if none yet)."""
    from siftlm.bench import load_results

    path = out / "runs" / folder
    if not list(path.glob("results*.jsonl")):
        return {}
    return {r.doc_id: r for r in load_results(path).get(method, [])}


def row(out: Path, label: str, condition: Condition, base: dict) -> dict | None:
    """One table row on the documents that base, nn and sift have (None: no document)."""
    from siftlm.evaluation.report import relative_to_base

    nn = _load(out, condition.nn_from or condition.name, "nn")
    sift = _load(out, condition.name, "sift")
    docs = sorted(set(base) & set(nn) & set(sift))
    if not docs:
        return None
    pick = {
        name: [found[d] for d in docs]
        for name, found in (("base", base), ("nn", nn), ("sift", sift))
    }
    estimates = {
        "nn": relative_to_base(pick["nn"], pick["base"]),
        "sift": relative_to_base(pick["sift"], pick["base"]),
        "sift/nn": relative_to_base(pick["sift"], pick["nn"]),
    }
    better = sum(s.nll_nats < n.nll_nats for s, n in zip(pick["sift"], pick["nn"], strict=True))
    return {
        "label": label,
        "condition": condition.name,
        "docs": len(docs),
        **{key: {"value": e.value, "se": e.se} for key, e in estimates.items()},
        "sift_better": better,
    }


def table(out: Path) -> dict[str, list[dict]]:
    """Rows per ablation (finished documents only; conditions without any are left out)."""
    base = _load(out, "base", "base")
    tables = {}
    for ablation, rows in ABLATIONS.items():
        found = [row(out, label, BY_NAME[name], base) for label, name in rows]
        tables[ablation] = [r for r in found if r is not None]
    return tables


def _cell(estimate: dict) -> str:
    return f"{estimate['value']:.1f}% ± {estimate['se']:.1f}"


def markdown(tables: dict[str, list[dict]], total: int | None) -> str:
    lines = [
        "# Ablations: when does SIFT beat nearest neighbours? (validation split)",
        "",
        f"{MODEL}, first {DOCS_PER_DOMAIN} validation documents per domain"
        + (f" ({total} documents)" if total else "")
        + ", the package defaults except one learning rate, 3e-4, for every prompt (no gate, no variance_lr), nn and sift. Made by "
        "`python benchmarks/ablate.py summarize` from `benchmarks/ablate/runs/`. Cells: "
        "bits in % of base's on the same documents (ratio of sums ± paired SE over "
        "documents); sift/nn: sift's bits in % of nn's (below 100: sift better); sift "
        "better: documents where sift's bits are fewer than nn's.",
    ]
    for ablation, rows in tables.items():
        lines += ["", f"## {TITLES[ablation]}", ""]
        if not rows:
            lines.append("No finished condition yet.")
            continue
        lines += [
            "| condition | docs | nn, % of base | sift, % of base | sift/nn | sift better |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            lines.append(
                f"| {r['label']} | {r['docs']} | {_cell(r['nn'])} | {_cell(r['sift'])} | "
                f"{_cell(r['sift/nn'])} | {r['sift_better']} of {r['docs']} |"
            )
        lines += ["", f"![{ablation}]({ablation}.png)"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], title: str, path: Path) -> None:
    """Left: nn and sift in % of base per condition; right: sift/nn; bars: ± 1 SE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(rows)))
    labels = [r["label"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for shift, method in ((-0.08, "nn"), (0.08, "sift")):
        left.errorbar(
            [i + shift for i in x],
            [r[method]["value"] for r in rows],
            yerr=[r[method]["se"] for r in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    left.set_ylabel("bits, % of base")
    left.legend()
    right.errorbar(
        x,
        [r["sift/nn"]["value"] for r in rows],
        yerr=[r["sift/nn"]["se"] for r in rows],
        marker="o",
        capsize=3,
        color="C2",
    )
    right.axhline(100, color="grey", lw=0.8)
    right.set_ylabel("sift's bits, % of nn's")
    for ax in (left, right):
        ax.set_xticks(x, labels)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(args: argparse.Namespace) -> None:
    out = Path(args.out)
    tables = table(out)
    if not any(tables.values()):
        raise SystemExit(f"no finished condition in {out / 'runs'} yet: run first")
    total = len(_load(out, "base", "base"))
    (out / "ablate.json").write_text(
        json.dumps({"model": MODEL, "tables": tables}, indent=2) + "\n"
    )
    (out / "summary.md").write_text(markdown(tables, total))
    for ablation, rows in tables.items():
        if rows:
            plot(rows, TITLES[ablation], out / f"{ablation}.png")
    print((out / "summary.md").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run", help="run (or resume) the conditions, in order")
    runner.add_argument("--rank", type=int, default=0)
    runner.add_argument("--world-size", type=int, default=1)
    runner.add_argument("--threads", type=int, default=1)
    runner.add_argument("--only", nargs="+", metavar="NAME", help="these conditions only")
    runner.add_argument("--store", default=None, help="datastore folder (default: the memory)")
    runner.add_argument("--domains", nargs="+", help="trial runs only (with another --out)")
    runner.add_argument("--out", default=str(OUT), help="folder of runs/ and the summary")
    runner.set_defaults(func=run)
    summary = sub.add_parser("summarize", help="tables and plots")
    summary.add_argument("--out", default=str(OUT))
    summary.set_defaults(func=summarize)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
