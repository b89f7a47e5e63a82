"""The report of a benchmark run: a markdown file and plots, made from the ``results*.jsonl`` files.

Everything here is derived from the saved results (``siftlm report DIR`` rebuilds it at
any time, also while a run is still going: only documents that every method finished
are compared).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siftlm.bench.report_file import REPORT_MD, resolve_options, write_report
from siftlm.bench.results import load_results
from siftlm.evaluation import (
    Curve,
    aggregate_bpb,
    bits_per_byte,
    common_documents,
    correlation,
    domain_table,
    learning_curve,
    redundancy,
    relative_to_base,
    time_shares,
    uncertainty_gain,
)

CURVES_PNG = "curves.png"
UNCERTAINTY_PNG = "uncertainty.png"
REDUNDANCY_PNG = "redundancy.png"
NEAR_COPY = 0.98  # cosine at or above which two training sequences count as near copies


def _figure():
    """(pyplot, figure, axes) of one report plot, drawn without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    return plt, fig, ax


def _save(plt, fig, ax, path: Path) -> None:
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_curves(curves: dict[str, Curve], base_bpb: float | None, path: Path) -> None:
    plt, fig, ax = _figure()
    for method, curve in curves.items():
        marker = "." if len(curve.steps) < 20 else None
        ax.plot(curve.steps, curve.bpb, label=method, lw=2, marker=marker)
    if base_bpb is not None:
        ax.axhline(base_bpb, color="grey", ls="--", lw=1, label="base")
    ax.set_xlabel("gradient steps (selected sequences)")
    ax.set_ylabel("bits per byte")
    ax.set_title("Test-time fine-tuning: bpb after each step")
    ax.legend()
    _save(plt, fig, ax, path)


def _scatter(
    x: np.ndarray, y: np.ndarray, labels: tuple[str, str, str], path: Path, symlog: bool = False
) -> None:
    """A per-prompt scatter plot with a zero line; ``labels``: (x, y, title)."""
    plt, fig, ax = _figure()
    ax.scatter(x, y, s=10, alpha=0.6)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(labels[2])
    if symlog:
        ax.set_xscale("symlog", linthresh=1)
    _save(plt, fig, ax, path)


def _plot_uncertainty(reduction: np.ndarray, gain: np.ndarray, rho: float, path: Path) -> None:
    labels = (
        "predicted uncertainty reduction  σ²₀ − σ²ₙ (SIFT)",
        "realised gain  (base bpb − SIFT bpb)",
        f"Uncertainty vs gain per prompt (Spearman ρ = {rho:.2f})",
    )
    _scatter(reduction, gain, labels, path)


def _plot_redundancy(copies: np.ndarray, advantage: np.ndarray, rho: float, path: Path) -> None:
    labels = (
        f"pairs of near copies among nn's picks (cosine ≥ {NEAR_COPY})",
        "SIFT's gain over nn  (nn bpb − SIFT bpb)",
        f"nn's near copies vs SIFT's gain (Spearman ρ = {rho:.2f})",
    )
    _scatter(copies, advantage, labels, path, symlog=True)  # counts: mostly 0, a few large


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def _store_embeddings(config: dict, store):
    """(embeddings, where) of the store that the run selected from, or (None, why not).
    ``store``: a path, an opened store (anything with ``embeddings``), or None for the
    path in the run's config."""
    from siftlm.datastore import Datastore

    if config.get("duplicates"):
        return None, "its memory held injected copies, which the store does not"
    if store is not None and not isinstance(store, (str, Path)):
        return store.embeddings, "the given store"
    path = store if store is not None else config.get("store_path")
    if not path:
        return None, "the run's config names no datastore folder (pass --store)"
    try:
        opened = Datastore.open(path, verify=False)
    except (FileNotFoundError, ValueError) as error:
        return None, f"its datastore is not available ({error})"
    recorded = config.get("store_chunks_sha256")
    if recorded and recorded != opened.manifest.chunks_sha256:
        return None, f"the store at {path} holds other chunks than the run's"
    return opened.embeddings, f"`{path}`"


def _redundancy_lines(by_method: dict, embeddings: np.ndarray, where: str, png: Path) -> list[str]:
    trained = [m for m, rs in by_method.items() if any(r.steps > 1 for r in rs)]
    if not trained:
        return []
    lines = [
        "## Redundancy of the picks",
        "",
        "Per prompt, over the pairs of training steps: the mean cosine of their sequences "
        "(a sequence trained on again counts as cosine 1) and the number of pairs of two "
        f"different stored sequences that are near copies (cosine ≥ {NEAR_COPY}: duplicates "
        f"in the datastore), under the store's embedder ({where}); means over prompts.",
        "",
        "| method | distinct sequences | mean pairwise cosine | near-copy pairs |",
        "| --- | ---: | ---: | ---: |",
    ]
    found = {}
    for method in trained:
        found[method] = redundancy(by_method[method], embeddings, NEAR_COPY)
        r = found[method]
        lines.append(
            f"| {method} | {100 * np.nanmean(r.distinct):.0f}% | {np.nanmean(r.mean_cosine):.3f} "
            f"| {r.near_copies.mean():.1f} |"
        )
    lines.append("")
    if "nn" in found and "sift" in by_method:
        nn = {r.doc_id: r for r in by_method["nn"]}
        sift = {r.doc_id: r for r in by_method["sift"]}
        advantage = np.array(
            [
                bits_per_byte(nn[d].nll_nats, nn[d].n_bytes)
                - bits_per_byte(sift[d].nll_nats, sift[d].n_bytes)
                for d in found["nn"].doc_ids
            ]
        )
        copies = found["nn"].near_copies
        if len(advantage) >= 2:
            pearson, spearman = correlation(copies, advantage)
            _plot_redundancy(copies, advantage, spearman, png)
            lines += [
                f"![redundancy vs advantage]({png.name})",
                "",
                f"- SIFT's gain over nn per prompt against the near-copy pairs among nn's picks: "
                f"Spearman {spearman:.3f}, Pearson {pearson:.3f} over {len(advantage)} documents",
            ]
            for label, group in (("no near copies", copies == 0), ("near copies", copies > 0)):
                if group.any():
                    lines.append(
                        f"- prompts whose nn picks hold {label}: {int(group.sum())}, SIFT's mean "
                        f"gain over nn {advantage[group].mean():+.4f} bpb "
                        f"(± {_standard_error(advantage[group]):.4f})"
                    )
            lines.append("")
    return lines


# (method, against): the comparisons that the paper's claims are about
PAIRS = (("sift", "nn"), ("sift", "us"), ("sift", "random"), ("sift-adaptive", "sift"))


def _paired_lines(by_method: dict) -> list[str]:
    """Method against method on the same documents: the ratio of their bits with its
    paired standard error, and on how many documents the first is better."""
    pairs = [p for p in PAIRS if p[0] in by_method and p[1] in by_method]
    compared = [m for m in by_method if m.endswith(":base")]  # other models (--compare)
    pairs += [(m, other) for other in compared for m in ("base", "sift") if m in by_method]
    if not pairs:
        return []
    lines = [
        "## Paired comparisons",
        "",
        "| method | against | bits, % of against's (± paired SE) | documents better / equal |",
        "| --- | --- | ---: | ---: |",
    ]
    for mine, theirs in pairs:
        ratio = relative_to_base(by_method[mine], by_method[theirs])
        theirs_by_doc = {r.doc_id: r.nll_nats for r in by_method[theirs]}
        better = sum(r.nll_nats < theirs_by_doc[r.doc_id] for r in by_method[mine])
        equal = sum(r.nll_nats == theirs_by_doc[r.doc_id] for r in by_method[mine])
        lines.append(
            f"| {mine} | {theirs} | {ratio.value:.1f}% ± {ratio.se:.1f} "
            f"| {better} / {equal} of {len(by_method[mine])} |"
        )
    return lines + [""]


_EXCLUDED = {
    None: "standard (the whole memory)",
    "same-source": "same source excluded (no memory from the document's source file)",
    "same-domain": "leave-one-domain-out (no memory from the document's domain)",
}
_OPTIONS = {
    "warmup": "warm-up {} steps",
    "proximal": "proximal μ {}",
    "variance_gate": "variance gate {}",
    "variance_lr": "lr by variance {}",
    "early_stop": "early stop every {} steps",
}


def protocol(config: dict) -> str:
    """The held-out protocol and training options of a run, in words."""
    words = _EXCLUDED.get(config.get("exclude"), str(config.get("exclude")))
    if config.get("query") == "first-half":
        words += "; query: the document's first half, the second half scored"
    options = [
        text.format(" ".join(map(str, value)) if isinstance(value, list) else value)
        for key, text in _OPTIONS.items()
        if (value := config.get(key))
    ]
    if config.get("memory_fraction", 1) < 1:
        options.append(f"memory fraction {config['memory_fraction']:g}")
    if config.get("duplicates"):
        options.append(
            f"{config['duplicate_kind']} copies of {config['duplicates']:.0%} of the memory injected"
        )
    return words + ("; " + ", ".join(options) if options else "")


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _results_by_method(folder: Path, config: dict, compare: Sequence[Path]) -> dict:
    """Each method's results on the documents that every method (and every compared
    run's method, as ``<model>:<method>``) has; methods in the config's order."""
    results = load_results(folder)
    order = [m for m in config.get("methods", []) if m in results]
    results = {m: results[m] for m in order + sorted(set(results) - set(order))}
    for other in compare:
        model = _config(other).get("model", other.name)
        for method, found in load_results(other).items():
            results[f"{model}:{method}"] = found
    by_method = common_documents(results)
    if not by_method or not next(iter(by_method.values())):
        raise ValueError(f"{folder}: no document has results for every method yet")
    return by_method


def _header_lines(config: dict, by_method: dict) -> list[str]:
    n_docs = len(next(iter(by_method.values())))
    return [
        f"# Benchmark: {config.get('model', '?')} on the {config.get('split', '?')} split",
        "",
        f"{n_docs} documents; n = {config.get('n')}, K = {config.get('k')}, "
        f"λ = {config.get('lambda_')}, lr = {config.get('lr')}, α = {config.get('alpha')} "
        f"(sift-adaptive). Protocol: {protocol(config)}. Cells: bits per byte (% of base "
        "± standard error across documents, paired). Made by `siftlm report` from the "
        "folder's `results*.jsonl`.",
        "",
        domain_table(by_method).to_markdown(),
        "",
    ]


def _curve_lines(by_method: dict, folder: Path) -> list[str]:
    base = by_method.get("base")
    base_bpb = aggregate_bpb(base).value if base is not None else None
    curves = {
        method: learning_curve(results)
        for method, results in by_method.items()
        if results and all(r.curve is not None and len(r.curve) > 1 for r in results)
    }
    if not curves:
        return []
    _plot_curves(curves, base_bpb, folder / CURVES_PNG)
    lines = ["## Learning curves", "", f"![bpb after each step]({CURVES_PNG})", ""]
    for method, curve in curves.items():
        marks = {0, 1, 5, 10, 20, 50, int(curve.steps[-1])}
        points = ", ".join(
            f"{s}: {b:.3f}" for s, b in zip(curve.steps, curve.bpb, strict=True) if int(s) in marks
        )
        lines.append(f"- {method}: bpb after steps {points}")
    return lines + [""]


def _uncertainty_lines(by_method: dict, folder: Path) -> list[str]:
    """SIFT's predicted uncertainty reduction against its realised gain over base; a
    correlation needs two documents, so with one the section says so."""
    base = by_method.get("base")
    methods = [m for m in ("sift", "sift-adaptive") if m in by_method]
    if base is None or not methods:
        return []
    lines = ["## Predicted uncertainty reduction vs realised gain", ""]
    if len(base) < 2:
        return lines + [
            f"(Not computed: a correlation needs 2 or more documents, not {len(base)}.)",
            "",
        ]
    for method in methods:
        pairs = uncertainty_gain(by_method[method], base)
        pearson, spearman = correlation(pairs.reduction, pairs.gain)
        if method == "sift":
            _plot_uncertainty(pairs.reduction, pairs.gain, spearman, folder / UNCERTAINTY_PNG)
            lines += [f"![uncertainty vs gain]({UNCERTAINTY_PNG})", ""]
        lines.append(
            f"- {method}: Pearson {pearson:.3f}, Spearman {spearman:.3f} over {len(pairs.gain)} "
            "documents"
        )
    return lines + [""]


def _time_lines(by_method: dict) -> list[str]:
    lines = ["## Time per prompt", "", "| method | s/prompt | search+select+restore |"]
    lines.append("| --- | ---: | ---: |")
    for method, results in by_method.items():
        shares = time_shares(results)
        seconds = sum(r.timings.total for r in results) / len(results)
        lines.append(f"| {method} | {seconds:.2f} | {100 * shares['overhead']:.1f}% |")
    return lines


def make_report(
    folder: str | Path,
    compare: Sequence[str | Path] | None = None,
    store: Any = None,
    *,
    force: bool = False,
    notes: list[str] | None = None,
) -> str:
    """Write ``report.md`` (and plots) into ``folder``; returns the file's text.

    ``compare``: other bench folders (e.g. a larger model's ``base``) whose methods join
    the table as ``<model>:<method>`` columns, on the documents that all have.
    ``store``: the datastore the run selected from (a folder or an opened store; default:
    the folder its config names), for the redundancy of the picks; that section is
    skipped, with the reason, where the store is not available.
    ``compare`` and ``store`` left None take the values recorded in an existing report
    (``siftlm.bench.report_file``); a report made with other options, or edited since,
    is not replaced unless ``force`` (``ReportConflictError``). ``notes``, if given,
    receives what the user should be told (options reused, a file replaced).
    """
    folder = Path(folder)
    options, note = resolve_options(folder, compare, store, force)
    config = _config(folder)
    by_method = _results_by_method(folder, config, options.compare)
    lines = _header_lines(config, by_method) + _paired_lines(by_method)
    lines += _curve_lines(by_method, folder) + _uncertainty_lines(by_method, folder)
    embeddings, where = _store_embeddings(config, store if store is not None else options.store)
    if embeddings is None:
        lines += [f"(Redundancy of the picks not computed: {where}.)", ""]
    else:
        lines += _redundancy_lines(by_method, embeddings, where, folder / REDUNDANCY_PNG)
    lines += _time_lines(by_method)
    if note is not None and notes is not None:
        notes.append(note)
    return write_report(folder / REPORT_MD, "\n".join(lines) + "\n", options)
