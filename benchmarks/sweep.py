"""Held-out sweep (issue 11): one training procedure that gains where the memory helps and
does no harm where it does not, chosen on the VALIDATION split only.

    python benchmarks/sweep.py run --rank 0 --world-size 2 &   # two workers share the
    python benchmarks/sweep.py run --rank 1 --world-size 2     # documents; resumable
    python benchmarks/sweep.py summarize                       # -> benchmarks/sweep/heldout/

Every grid point (a training procedure, ``PROCEDURES``) runs nn and sift (n = N, K = K,
λ = LAMBDA, Adam, full fine-tuning, house-small) on the first ``DOCS_PER_DOMAIN``
validation documents of every domain under two protocols: the standard one (the memory
as it is: "in-domain") and leave-one-domain-out (``exclude="same-domain"``: "lodo").
Base (no training) runs once. The variance gate needs no run of its own: a gated prompt
is answered by the base model, so its result is base's; every gate in ``GATES`` is
applied to every run from the saved posterior variances.

The rule, fixed before any of these runs:

1. For each procedure p and gate g, R(protocol, method) = bits of the method / bits of
   base over the documents (a ratio of sums).
2. (p, g) is admissible when, for nn and sift, R(lodo) <= 1.000 in aggregate and on every
   domain R(lodo) <= 1.01.
3. Among admissible points the one with the lowest mean of R(in-domain) over nn and sift
   wins; if none is admissible, the one with the lowest max over nn, sift of R(lodo).
4. Adaptive SIFT's α (``ALPHAS``) is then chosen for the winner from a sift run with a
   learning curve (``adaptive`` stage): the α with the fewest mean steps whose bpb is
   within 0.3 % of fixed sift in both protocols, else none (fixed n).
5. The early stop on the known half (first-half protocol only; ``adaptive`` stage too):
   base, and sift at the winner with and without ``early_stop = EARLY_STOP``; it is
   kept (for first-half runs) if it lowers sift's first-half bpb.

The gate grid's range was set from the scale of SIFT's posterior variances with λ = 0.1
(0.05-0.3 for in-domain prompts in the committed test bench); no gain of any gate on the
test split entered the choice of the grid or of the rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "sweep" / "heldout"
MODEL = "house-small"
DOCS_PER_DOMAIN = 2
N = 45
K = 200
LAMBDA = 0.1
METHODS = ("nn", "sift")
PROTOCOLS = {"in-domain": None, "lodo": "same-domain"}
# label -> BenchConfig overrides, in the order they run (most informative first)
PROCEDURES: dict[str, dict] = {
    "lr3e-4": {"lr": 3e-4},
    "lr1e-3-warmup10": {"lr": 1e-3, "warmup": 10},
    "lr1e-4": {"lr": 1e-4},
    "lr1e-3": {"lr": 1e-3},
    "lr1e-3-prox0.05": {"lr": 1e-3, "proximal": 0.05},
    "lr3e-4-warmup10": {"lr": 3e-4, "warmup": 10},
}
GATES: tuple[float | None, ...] = (None, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2)
ALPHAS = (0.02, 0.05, 0.1, 0.15, 0.55)
LODO_AGGREGATE, LODO_DOMAIN = 1.0, 1.01
ALPHA_TOLERANCE = 0.003
EARLY_STOP = 5


def bench_config(folder: str, rank: int = 0, world_size: int = 1, **overrides):
    from siftlm.bench import BenchConfig

    values = {
        "model": MODEL,
        "split": "validation",
        "docs_per_domain": DOCS_PER_DOMAIN,
        "n": N,
        "k": K,
        "lambda_": LAMBDA,
        "methods": METHODS,
        "curve_methods": (),
        "out": str(OUT / "runs" / folder),
        "rank": rank,
        "world_size": world_size,
        "progress": False,
    }
    return BenchConfig(**{**values, **overrides})


def grid() -> list[tuple[str, dict]]:
    """(folder, overrides) of every run: base, then procedures x protocols."""
    points = [("base", {"methods": ("base",)})]
    for label, overrides in PROCEDURES.items():
        for protocol, exclude in PROTOCOLS.items():
            points.append((f"{protocol}/{label}", {**overrides, "exclude": exclude}))
    return points


def adaptive_points(choice: dict) -> list[tuple[str, dict]]:
    """sift with a learning curve at the chosen procedure, both protocols; and the
    first-half protocol with and without the early stop."""
    overrides = {**PROCEDURES[choice["procedure"]], "variance_gate": choice["gate"]}
    first_half = [
        ("first-half/base", {"methods": ("base",), "query": "first-half"}),
        ("first-half/sift", {**overrides, "methods": ("sift",), "query": "first-half"}),
        (
            f"first-half/sift-early-stop{EARLY_STOP}",
            {**overrides, "methods": ("sift",), "query": "first-half", "early_stop": EARLY_STOP},
        ),
    ]
    return first_half + [
        (
            f"adaptive/{protocol}",
            {
                **overrides,
                "exclude": exclude,
                "methods": ("sift",),
                "curve_methods": ("sift",),
                "curve_every": 5,
            },
        )
        for protocol, exclude in PROTOCOLS.items()
    ]


def run(args: argparse.Namespace) -> None:
    import torch

    from siftlm.bench import run_bench
    from siftlm.bench.runner import open_store
    from siftlm.models import load_model

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(MODEL)
    store = open_store(None)
    points = grid()
    if args.stage == "adaptive":
        points = adaptive_points(json.loads((OUT / "sweep.json").read_text())["choice"])
    for folder, overrides in points:
        print(f"== {folder} (worker {args.rank}/{args.world_size})", file=sys.stderr, flush=True)
        config = bench_config(folder, args.rank, args.world_size, **overrides)
        run_bench(config, model=model, tokenizer=tokenizer, store=store)


def _load(folder: str, method: str) -> dict:
    """doc_id -> result of ``method`` in a run folder ({} if the folder has none yet)."""
    from siftlm.bench import load_results

    if not list((OUT / "runs" / folder).glob("results*.jsonl")):
        return {}
    return {r.doc_id: r for r in load_results(OUT / "runs" / folder).get(method, [])}


def ratios(results: dict, base: dict, gate: float | None) -> tuple[float, dict[str, float]]:
    """(aggregate, per domain) bits of ``results`` over base's, with the gate applied."""
    nll, base_nll = defaultdict(float), defaultdict(float)
    for doc_id, result in results.items():
        gated = gate is not None and result.posterior_variance > gate * result.prior_variance
        nll[result.domain] += base[doc_id].nll_nats if gated else result.nll_nats
        base_nll[result.domain] += base[doc_id].nll_nats
    per_domain = {d: nll[d] / base_nll[d] for d in sorted(nll)}
    return sum(nll.values()) / sum(base_nll.values()), per_domain


def table(base: dict) -> list[dict]:
    """One row per (procedure, gate): R per protocol and method, worst LODO domain,
    share of prompts gated."""
    rows = []
    for label in PROCEDURES:
        runs = {
            (protocol, method): _load(f"{protocol}/{label}", method)
            for protocol in PROTOCOLS
            for method in METHODS
        }
        if any(len(found) < len(base) for found in runs.values()):
            continue  # not finished
        for gate in GATES:
            row = {"procedure": label, "gate": gate}
            for (protocol, method), found in runs.items():
                aggregate, per_domain = ratios(found, base, gate)
                row[f"{protocol}/{method}"] = aggregate
                if protocol == "lodo":
                    row[f"worst/{method}"] = max(per_domain.values())
                    row[f"worst-domain/{method}"] = max(per_domain, key=per_domain.get)
                row[f"gated/{protocol}/{method}"] = float(
                    np.mean(
                        [
                            gate is not None and r.posterior_variance > gate * r.prior_variance
                            for r in found.values()
                        ]
                    )
                )
            rows.append(row)
    return rows


def choose(rows: list[dict]) -> dict:
    """The rule of the module docstring (points 2 and 3)."""

    def admissible(row: dict) -> bool:
        return all(
            row[f"lodo/{m}"] <= LODO_AGGREGATE and row[f"worst/{m}"] <= LODO_DOMAIN for m in METHODS
        )

    def in_domain(row: dict) -> float:
        return float(np.mean([row[f"in-domain/{m}"] for m in METHODS]))

    candidates = [row for row in rows if admissible(row)]
    if candidates:
        best = min(candidates, key=in_domain)
    else:
        best = min(rows, key=lambda row: max(row[f"lodo/{m}"] for m in METHODS))
    return {"procedure": best["procedure"], "gate": best["gate"], "admissible": bool(candidates)}


def summarize(_: argparse.Namespace) -> None:
    base = _load("base", "base")
    rows = table(base)
    if not rows:
        raise SystemExit("no finished grid point yet: run first")
    choice = choose(rows)
    summary = {"choice": choice, "rows": rows, "docs": len(base), "model": MODEL}
    adaptive = _adaptive(choice, base)
    if adaptive is not None:
        summary["adaptive"] = adaptive
    first_half = _first_half()
    if first_half is not None:
        summary["first_half"] = first_half
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    (OUT / "summary.md").write_text(_markdown(summary))
    _plot(rows, OUT / "sweep.png")
    print((OUT / "summary.md").read_text())


def _adaptive(choice: dict, base: dict) -> dict | None:
    """α per the rule's point 4, from the adaptive stage's curves (None: not run yet)."""
    import torch

    from siftlm.evaluation.bpb import LN2
    from siftlm.selection.stopping import adaptive_steps

    found = {p: _load(f"adaptive/{p}", "sift") for p in PROTOCOLS}
    if any(len(results) < len(base) for results in found.values()):
        return None
    gate = choice["gate"]
    table_rows = []
    for alpha in (None, *ALPHAS):
        row = {"alpha": alpha}
        for protocol, results in found.items():
            ordered = list(results.values())
            variances = torch.tensor([r.variances for r in ordered], dtype=torch.float64)
            stops = [N] * len(ordered) if alpha is None else adaptive_steps(variances, alpha)
            # the gate reads the posterior variance where the prompt stops
            steps = [
                0
                if gate is not None and r.variances[int(s) - 1] > gate * r.prior_variance
                else int(s)
                for r, s in zip(ordered, stops, strict=True)
            ]
            nll = sum(_nll_at(r, s) for r, s in zip(ordered, steps, strict=True))
            row[protocol] = nll / (LN2 * sum(r.n_bytes for r in ordered))
            row[f"steps/{protocol}"] = float(np.mean(steps))
        table_rows.append(row)
    fixed = table_rows[0]
    fits = [
        row
        for row in table_rows[1:]
        if all(row[p] <= fixed[p] * (1 + ALPHA_TOLERANCE) for p in PROTOCOLS)
    ]
    best = min(fits, key=lambda r: sum(r[f"steps/{p}"] for p in PROTOCOLS)) if fits else None
    return {"rows": table_rows, "alpha": None if best is None else best["alpha"]}


def _first_half() -> dict | None:
    """Rule point 5: sift's first-half bpb (% of base) with and without the early stop."""
    base = _load("first-half/base", "base")
    runs = {
        "plain": _load("first-half/sift", "sift"),
        "early stop": _load(f"first-half/sift-early-stop{EARLY_STOP}", "sift"),
    }
    if not base or any(len(found) < len(base) for found in runs.values()):
        return None
    ratio = {
        name: sum(r.nll_nats for r in found.values()) / sum(b.nll_nats for b in base.values())
        for name, found in runs.items()
    }
    kept = {
        name: float(
            np.mean([r.steps if r.kept_steps is None else r.kept_steps for r in found.values()])
        )
        for name, found in runs.items()
    }
    return {"ratio": ratio, "kept_steps": kept, "early_stop": ratio["early stop"] < ratio["plain"]}


def _nll_at(result, step: int) -> float:
    """The document's NLL after ``step`` steps: the last scored curve point at or before."""
    steps = np.asarray(result.curve_steps)
    return float(result.curve[int(np.searchsorted(steps, step, side="right")) - 1])


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _markdown(summary: dict) -> str:
    choice = summary["choice"]
    lines = [
        "# Held-out sweep (validation split)",
        "",
        f"{summary['docs']} validation documents ({DOCS_PER_DOMAIN} per domain), {MODEL}, "
        f"n = {N}, K = {K}, λ = {LAMBDA}, Adam, full fine-tuning. Made by `python "
        "benchmarks/sweep.py summarize` from `benchmarks/sweep/heldout/runs/`. Cells: bits "
        "per byte in % of base (a ratio of sums); in-domain = the standard memory, lodo = "
        "leave-one-domain-out; worst = the worst domain under lodo; gated = share of "
        "prompts the gate answers with the base model.",
        "",
        "| procedure | gate | in-domain nn | in-domain sift | lodo nn | lodo sift | "
        "worst lodo nn | worst lodo sift | gated in-domain (sift) | gated lodo (sift) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["rows"]:
        gate = "—" if r["gate"] is None else f"{r['gate']:g}"
        lines.append(
            f"| {r['procedure']} | {gate} | {_fmt(r['in-domain/nn'])} | "
            f"{_fmt(r['in-domain/sift'])} | {_fmt(r['lodo/nn'])} | {_fmt(r['lodo/sift'])} | "
            f"{_fmt(r['worst/nn'])} ({r['worst-domain/nn']}) | "
            f"{_fmt(r['worst/sift'])} ({r['worst-domain/sift']}) | "
            f"{_fmt(r['gated/in-domain/sift'])} | {_fmt(r['gated/lodo/sift'])} |"
        )
    gate = "none" if choice["gate"] is None else f"{choice['gate']:g}"
    lines += [
        "",
        f"**Choice** (rule in `benchmarks/sweep.py`): {choice['procedure']}, variance gate "
        f"{gate}" + ("" if choice["admissible"] else " (no point was admissible)") + ".",
    ]
    if "adaptive" in summary:
        lines += _adaptive_lines(summary["adaptive"])
    if "first_half" in summary:
        found = summary["first_half"]
        lines += [
            "",
            "First-half protocol (sift at the choice; % of base bpb on the second halves): "
            + ", ".join(
                f"{name} {_fmt(value)} ({found['kept_steps'][name]:.1f} steps kept)"
                for name, value in found["ratio"].items()
            )
            + f"; **early stop {'kept' if found['early_stop'] else 'not kept'}**.",
        ]
    lines += ["", "![held-out sweep](sweep.png)", ""]
    return "\n".join(lines)


def _adaptive_lines(adaptive: dict) -> list[str]:
    lines = [
        "",
        "Adaptive SIFT at the chosen procedure (sift with a learning curve; bpb at the stop):",
        "",
        "| α | in-domain bpb | steps | lodo bpb | steps |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in adaptive["rows"]:
        alpha = "fixed n" if r["alpha"] is None else f"{r['alpha']:g}"
        lines.append(
            f"| {alpha} | {r['in-domain']:.4f} | {r['steps/in-domain']:.1f} | "
            f"{r['lodo']:.4f} | {r['steps/lodo']:.1f} |"
        )
    alpha = adaptive["alpha"]
    lines += [
        "",
        f"**α**: {alpha:g}" if alpha is not None else "**α**: none keeps sift's bpb within 0.3 %",
    ]
    return lines


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METHODS), figsize=(5.5 * len(METHODS), 4.2), sharey=True)
    for ax, method in zip(axes, METHODS, strict=True):
        for label in PROCEDURES:
            points = [r for r in rows if r["procedure"] == label]
            if not points:
                continue
            x = [100 * r[f"lodo/{method}"] for r in points]
            y = [100 * r[f"in-domain/{method}"] for r in points]
            ax.plot(x, y, marker="o", label=label)
            ax.annotate("no gate", (x[0], y[0]), fontsize=7)
        ax.axvline(100, color="grey", lw=0.8)
        ax.axhline(100, color="grey", lw=0.8)
        ax.set_title(f"{method}: each line = one procedure, points = gates")
        ax.set_xlabel("leave-one-domain-out, % of base bpb")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("in-domain, % of base bpb")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run", help="run (or resume) every grid point")
    runner.add_argument("--stage", choices=("grid", "adaptive"), default="grid")
    runner.add_argument("--rank", type=int, default=0)
    runner.add_argument("--world-size", type=int, default=1)
    runner.add_argument("--threads", type=int, default=1)
    runner.set_defaults(func=run)
    sub.add_parser("summarize", help="tables, plot and choice").set_defaults(func=summarize)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
