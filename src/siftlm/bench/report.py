"""The report of a benchmark run: a markdown file and plots, made from ``results.jsonl``.

Everything here is derived from the saved results (``siftlm report DIR`` rebuilds it at
any time, also while a run is still going: only documents that every method finished
are compared).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siftlm.bench.results import load_results
from siftlm.evaluation import (
    Curve,
    aggregate_bpb,
    common_documents,
    correlation,
    domain_table,
    learning_curve,
    time_shares,
    uncertainty_gain,
)

CURVES_PNG = "curves.png"
UNCERTAINTY_PNG = "uncertainty.png"


def _plot_curves(curves: dict[str, Curve], base_bpb: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, curve in curves.items():
        ax.plot(
            curve.steps,
            curve.bpb,
            label=method,
            lw=2,
            marker="." if len(curve.steps) < 20 else None,
        )
    if base_bpb is not None:
        ax.axhline(base_bpb, color="grey", ls="--", lw=1, label="base")
    ax.set_xlabel("gradient steps (selected sequences)")
    ax.set_ylabel("bits per byte")
    ax.set_title("Test-time fine-tuning: bpb after each step")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_uncertainty(reduction: np.ndarray, gain: np.ndarray, rho: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.scatter(reduction, gain, s=10, alpha=0.6)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel("predicted uncertainty reduction  σ²₀ − σ²ₙ (SIFT)")
    ax.set_ylabel("realised gain  (base bpb − SIFT bpb)")
    ax.set_title(f"Uncertainty vs gain per prompt (Spearman ρ = {rho:.2f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def make_report(folder: str | Path, compare: Sequence[str | Path] = ()) -> str:
    """Write ``report.md`` (and plots) into ``folder``; returns the markdown.

    ``compare``: other bench folders (e.g. a larger model's ``base``) whose methods join
    the table as ``<model>:<method>`` columns, on the documents that all have.
    """
    folder = Path(folder)
    config = _config(folder)
    results = load_results(folder)
    order = [m for m in config.get("methods", []) if m in results]
    results = {m: results[m] for m in order + sorted(set(results) - set(order))}
    for other in map(Path, compare):
        model = _config(other).get("model", other.name)
        for method, found in load_results(other).items():
            results[f"{model}:{method}"] = found
    by_method = common_documents(results)
    if not by_method or not next(iter(by_method.values())):
        raise ValueError(f"{folder}: no document has results for every method yet")
    n_docs = len(next(iter(by_method.values())))
    lines = [
        f"# Benchmark: {config.get('model', '?')} on the {config.get('split', '?')} split",
        "",
        f"{n_docs} documents; n = {config.get('n')}, K = {config.get('k')}, "
        f"λ = {config.get('lambda_')}, lr = {config.get('lr')}, α = {config.get('alpha')} "
        "(sift-adaptive). Cells: bits per byte (% of base ± standard error across "
        "documents, paired). Made by `siftlm report` from `results.jsonl`.",
        "",
        domain_table(by_method).to_markdown(),
        "",
    ]
    base = by_method.get("base")
    base_bpb = None
    if base is not None:
        base_bpb = aggregate_bpb(base).value
    curves = {}
    for method, results in by_method.items():
        if results and all(r.curve is not None and len(r.curve) > 1 for r in results):
            curves[method] = learning_curve(results)
    if curves:
        _plot_curves(curves, base_bpb, folder / CURVES_PNG)
        lines += ["## Learning curves", "", f"![bpb after each step]({CURVES_PNG})", ""]
        for method, curve in curves.items():
            marks = {0, 1, 5, 10, 20, 50, int(curve.steps[-1])}
            points = ", ".join(
                f"{s}: {b:.3f}"
                for s, b in zip(curve.steps, curve.bpb, strict=True)
                if int(s) in marks
            )
            lines.append(f"- {method}: bpb after steps {points}")
        lines.append("")
    for method in ("sift", "sift-adaptive"):
        if base is None or method not in by_method:
            continue
        pairs = uncertainty_gain(by_method[method], base)
        pearson, spearman = correlation(pairs.reduction, pairs.gain)
        if method == "sift":
            _plot_uncertainty(pairs.reduction, pairs.gain, spearman, folder / UNCERTAINTY_PNG)
            lines += [
                "## Predicted uncertainty reduction vs realised gain",
                "",
                f"![uncertainty vs gain]({UNCERTAINTY_PNG})",
                "",
            ]
        lines.append(
            f"- {method}: Pearson {pearson:.3f}, Spearman {spearman:.3f} over {len(pairs.gain)} "
            "documents"
        )
    lines += ["", "## Time per prompt", "", "| method | s/prompt | search+select+restore |"]
    lines.append("| --- | ---: | ---: |")
    for method, results in by_method.items():
        shares = time_shares(results)
        seconds = sum(r.timings.total for r in results) / len(results)
        lines.append(f"| {method} | {seconds:.2f} | {100 * shares['overhead']:.1f}% |")
    markdown = "\n".join(lines) + "\n"
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    return markdown
