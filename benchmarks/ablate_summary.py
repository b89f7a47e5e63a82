"""The tables of ``benchmarks/ablate.py summarize``: one per section, from the run folders.

Three kinds of section: pairs (nn and sift per condition, against the house-small base),
models (the same per LM, each against its own base) and the rival (nn, sift, hull and
gradient reuse, with training passes and seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

from ablate_conditions import BY_NAME, MODEL_4X, Condition

# section -> (row label, condition) in table order: nn and sift against house-small's base
PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "memory": (("¼", "memory-0.25"), ("½", "memory-0.5"), ("all", "all")),
    "duplication": (
        ("none", "all"),
        ("exact 10 %", "dup-exact-10"),
        ("exact 30 %", "dup-exact-30"),
        ("exact 100 %", "dup-exact-100"),
        ("exact 100 %, 4 copies", "dup-exact-100x4"),
        ("exact 100 %, 9 copies", "dup-exact-100x9"),
        ("near 10 %", "dup-near-10"),
        ("near 30 %", "dup-near-30"),
    ),
    "lambda": (("0.01", "lambda-0.01"), ("0.1 (default)", "all"), ("1.0", "lambda-1")),
    "query": (
        ("first 256 wordpieces (one vector)", "all"),
        ("every chunk", "query-chunks"),
        ("4 chunks, evenly spaced", "query-chunks-4"),
    ),
    "embedder": (
        ("all-MiniLM-L6-v2", "all"),
        ("house-small's hidden states (causal:, mean-pooled)", "embed-causal"),
    ),
}
# base strength: (row label, base folder, nn/sift condition), each against its own base
MODELS: tuple[tuple[str, str, str], ...] = (
    ("house-small", "base", "all"),
    (Path(MODEL_4X).name, "base-4x", "model-4x"),
)
# the rival: (row label, folder, method, folder of the same method without reuse)
RIVAL: tuple[tuple[str, str, str, str | None], ...] = (
    ("nn", "all", "nn", None),
    ("sift", "all", "sift", None),
    ("hull", "hull", "hull", None),
    ("sift, gradient reuse", "sift-reuse", "sift", "all"),
    ("hull, gradient reuse", "hull-reuse", "hull", "hull"),
)
TITLES = {
    "memory": "Memory size (a random fraction of the 30k-chunk memory)",
    "duplication": "Duplication injected into the memory (copies of a random share)",
    "lambda": "SIFT's λ (nn's picks are the top cosines whatever λ)",
    "query": "Query: first 256 wordpieces vs all chunks",
    "embedder": "Embedder: all-MiniLM-L6-v2 vs the LM's own hidden states",
    "base": "Base model strength",
    "rival": "The newest rival: hull, and gradient reuse",
}
SECTIONS = {"validation": tuple(TITLES), "test": ("rival",)}


def load(out: Path, folder: str, method: str) -> dict:
    """doc_id -> result of ``method`` in ``runs/<folder>`` ({} if none yet)."""
    from siftlm.bench import load_results

    path = out / "runs" / folder
    if not list(path.glob("results*.jsonl")):
        return {}
    return {r.doc_id: r for r in load_results(path).get(method, [])}


def _estimate(results: list, reference: list) -> dict:
    """``results``' bits in % of ``reference``'s (ratio of sums, paired SE)."""
    from siftlm.evaluation.report import relative_to_base

    estimate = relative_to_base(results, reference)
    return {"value": estimate.value, "se": estimate.se}


def _pick(out: Path, condition: Condition, base: dict) -> dict[str, list] | None:
    """base, nn and sift results on the documents all three have (None: no document)."""
    nn = load(out, condition.nn_from or condition.name, "nn")
    sift = load(out, condition.name, "sift")
    docs = sorted(set(base) & set(nn) & set(sift))
    if not docs:
        return None
    return {
        name: [found[d] for d in docs]
        for name, found in (("base", base), ("nn", nn), ("sift", sift))
    }


def _pair_row(label: str, condition: Condition, pick: dict[str, list]) -> dict:
    better = sum(s.nll_nats < n.nll_nats for s, n in zip(pick["sift"], pick["nn"], strict=True))
    return {
        "label": label,
        "condition": condition.name,
        "docs": len(pick["base"]),
        "nn": _estimate(pick["nn"], pick["base"]),
        "sift": _estimate(pick["sift"], pick["base"]),
        "sift/nn": _estimate(pick["sift"], pick["nn"]),
        "sift_better": better,
    }


def row(out: Path, label: str, condition: Condition, base: dict) -> dict | None:
    """One table row on the documents that base, nn and sift have (None: no document)."""
    pick = _pick(out, condition, base)
    return None if pick is None else _pair_row(label, condition, pick)


def model_row(out: Path, label: str, base_folder: str, condition: str) -> dict | None:
    """A pair row against the model's own base, with that base's bits per byte."""
    from siftlm.evaluation.report import aggregate_bpb

    pick = _pick(out, BY_NAME[condition], load(out, base_folder, "base"))
    if pick is None:
        return None
    found = _pair_row(label, BY_NAME[condition], pick)
    bpb = aggregate_bpb(pick["base"])
    config = out / "runs" / base_folder / "config.json"
    if config.is_file():  # the model it ran (``--model-4x`` may name another)
        found["label"] = json.loads(config.read_text()).get("model", label)
    return {**found, "base_folder": base_folder, "base_bpb": {"value": bpb.value, "se": bpb.se}}


def _passes(results: list) -> float:
    return fmean(r.passes or 0 for r in results)


def _train_seconds(results: list) -> float:
    return fmean(r.timings.train for r in results)


def rival_row(out: Path, spec: tuple, base: dict) -> dict | None:
    """hull or reuse against base, sift and nn (and its run without reuse), on the
    documents that all of them have."""
    label, folder, method, without = spec
    mine = load(out, folder, method)
    sources = {"base": base, "nn": load(out, "all", "nn"), "sift": load(out, "all", "sift")}
    if without is not None:
        sources["without"] = load(out, without, method)
    docs = sorted(set(mine).intersection(*sources.values()))
    if not docs:
        return None
    pick = {name: [found[d] for d in docs] for name, found in sources.items()}
    results = [mine[d] for d in docs]
    same = {"nn": (folder, method) == ("all", "nn"), "sift": (folder, method) == ("all", "sift")}
    found = {
        "label": label,
        "condition": folder,
        "method": method,
        "docs": len(docs),
        "of_base": _estimate(results, pick["base"]),
        "vs_sift": None if same["sift"] else _estimate(results, pick["sift"]),
        "vs_nn": None if same["nn"] else _estimate(results, pick["nn"]),
        "better_than_sift": None
        if same["sift"]
        else sum(m.nll_nats < s.nll_nats for m, s in zip(results, pick["sift"], strict=True)),
        "passes": _passes(results),
        "train_s": _train_seconds(results),
        "without": None,
    }
    if without is not None:
        found["without"] = {
            "bits": _estimate(results, pick["without"]),
            "passes": _passes(pick["without"]),
            "train_s": _train_seconds(pick["without"]),
        }
    return found


def tables(out: Path, split: str = "validation") -> dict[str, list[dict]]:
    """Rows per section (finished documents only; conditions without any are left out)."""
    base = load(out, "base", "base")
    found: dict[str, list] = {}
    for section in SECTIONS[split]:
        if section in PAIRS:
            rows = [row(out, label, BY_NAME[name], base) for label, name in PAIRS[section]]
        elif section == "base":
            rows = [model_row(out, *spec) for spec in MODELS]
        else:
            rows = [rival_row(out, spec, base) for spec in RIVAL]
        found[section] = [r for r in rows if r is not None]
    return found


def _cell(estimate: dict | None) -> str:
    return "—" if estimate is None else f"{estimate['value']:.1f}% ± {estimate['se']:.1f}"


def _pair_lines(rows: list[dict], models: bool) -> list[str]:
    head = "| condition | docs | nn, % of base | sift, % of base | sift/nn | sift better |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if models:
        head = head.replace("condition | docs |", "model | docs | base bpb |")
        head = head.replace("% of base", "% of its base")
        rule += " ---: |"
    lines = [head, rule]
    for r in rows:
        bpb = f" {r['base_bpb']['value']:.3f} ± {r['base_bpb']['se']:.3f} |" if models else ""
        lines.append(
            f"| {r['label']} | {r['docs']} |{bpb} {_cell(r['nn'])} | {_cell(r['sift'])} | "
            f"{_cell(r['sift/nn'])} | {r['sift_better']} of {r['docs']} |"
        )
    return lines


def _rival_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| method | docs | % of base | / sift | / nn | better than sift | passes per doc "
        "| training s per doc | / without reuse |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        without = r["without"]
        passes, seconds = f"{r['passes']:.1f}", f"{r['train_s']:.1f}"
        if without is not None:
            passes += f" ({without['passes']:.1f} without)"
            seconds += f" ({without['train_s']:.1f} without)"
        better = "—" if r["better_than_sift"] is None else f"{r['better_than_sift']} of {r['docs']}"
        lines.append(
            f"| {r['label']} | {r['docs']} | {_cell(r['of_base'])} | {_cell(r['vs_sift'])} | "
            f"{_cell(r['vs_nn'])} | {better} | {passes} | {seconds} | "
            f"{_cell(without and without['bits'])} |"
        )
    return lines


NOTES = {
    "base": "Each model's nn and sift in % of its own base's bits on the same documents; "
    "base bpb: the model's bits per byte on them (ratio of sums ± SE).",
    "rival": "hull, nn and sift: one run each; gradient reuse: the same method computing a "
    "repeated window's gradient once per prompt and reusing it for its repeats "
    "(`gradient_reuse` = n). / sift, / nn, / without reuse: bits in % of that run's on the "
    "same documents (paired SE). Passes: forward and backward passes of training per "
    "document (exact); seconds: training time per document (noisy: runs at other times "
    "under other load).",
}


def markdown(found: dict[str, list[dict]], total: int | None, model: str, split: str) -> str:
    lines = [
        f"# Ablations: when does SIFT beat nearest neighbours? ({split} split)",
        "",
        f"{model}, first 2 {split} documents per domain"
        + (f" ({total} documents)" if total else "")
        + ", the package defaults except one learning rate, 3e-4, for every prompt (no "
        "gate, no variance_lr), nn and sift. Made by `python benchmarks/ablate.py summarize"
        + ("" if split == "validation" else f" --split {split}")
        + "` from its folder's `runs/`. Cells: bits in % of base's on the same documents "
        "(ratio of sums ± paired SE over documents); sift/nn: sift's bits in % of nn's "
        "(below 100: sift better); sift better: documents where sift's bits are fewer "
        "than nn's.",
    ]
    for section, rows in found.items():
        lines += ["", f"## {TITLES[section]}", ""]
        if section in NOTES:
            lines += [NOTES[section], ""]
        if not rows:
            lines.append("No finished condition yet.")
            continue
        if section == "rival":
            lines += _rival_lines(rows)
        else:
            lines += _pair_lines(rows, models=section == "base")
        lines += ["", f"![{section}]({section}.png)"]
    return "\n".join(lines) + "\n"


def _axes(wide: bool = True):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10 if wide else 8, 3.8))
    return plt, fig, axes


def _finish(plt, fig, axes, labels: list[str], title: str, path: Path) -> None:
    for ax in axes:
        ax.set_xticks(list(range(len(labels))), labels, fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(rows: list[dict], title: str, path: Path) -> None:
    """Left: nn and sift in % of base per condition; right: sift/nn; bars: ± 1 SE."""
    plt, fig, (left, right) = _axes()
    x = list(range(len(rows)))
    for shift, method in ((-0.08, "nn"), (0.08, "sift")):
        values = [r[method] for r in rows]
        left.errorbar(
            [i + shift for i in x],
            [v["value"] for v in values],
            yerr=[v["se"] for v in values],
            marker="o",
            capsize=3,
            label=method,
        )
    left.set_ylabel("bits, % of base")
    left.legend()
    ratio = [r["sift/nn"] for r in rows]
    right.errorbar(
        x, [v["value"] for v in ratio], yerr=[v["se"] for v in ratio], marker="o", capsize=3
    )
    right.axhline(100, color="grey", lw=0.8)
    right.set_ylabel("sift's bits, % of nn's")
    labels = [r["label"] for r in rows]
    if "base_bpb" in rows[0]:
        labels = [f"{r['label']}\n(base {r['base_bpb']['value']:.3f} bpb)" for r in rows]
    _finish(plt, fig, (left, right), labels, title, path)


def plot_rival(rows: list[dict], title: str, path: Path) -> None:
    """Left: bits in % of base per method (± 1 SE); right: training passes per
    document, with (dark) and without (light) gradient reuse."""
    plt, fig, (left, right) = _axes()
    x = list(range(len(rows)))
    left.errorbar(
        x,
        [r["of_base"]["value"] for r in rows],
        yerr=[r["of_base"]["se"] for r in rows],
        marker="o",
        capsize=3,
        linestyle="none",
    )
    left.set_ylabel("bits, % of base")
    without = [r["without"]["passes"] if r["without"] else 0.0 for r in rows]
    right.bar(x, without, color="C1", alpha=0.35, label="without reuse")
    right.bar(x, [r["passes"] for r in rows], width=0.5, color="C0", label="this run")
    right.set_ylabel("training passes per document")
    right.legend(fontsize=8)
    _finish(plt, fig, (left, right), [r["label"].replace(", ", "\n") for r in rows], title, path)


def write(out: Path, found: dict[str, list[dict]], total: int | None, model: str, split: str):
    """summary.md, ablate.json and one plot per section with rows, in ``out``."""
    (out / "ablate.json").write_text(
        json.dumps({"model": model, "split": split, "tables": found}, indent=2) + "\n"
    )
    (out / "summary.md").write_text(markdown(found, total, model, split))
    for section, rows in found.items():
        if rows:
            draw = plot_rival if section == "rival" else plot
            draw(rows, TITLES[section], out / f"{section}.png")
