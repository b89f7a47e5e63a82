"""The README's side-by-side table of the final runs (``benchmarks/final.py``).

    python benchmarks/final_table.py                       # -> results/heldout-final/table.md
    python benchmarks/final_table.py --folder benchmarks/results/heldout-test

Only the documents that every protocol and every method has are counted (a partial run
holds the same documents in all three: ``final.py`` works in rounds), so the columns are
comparable. Cells: bits per byte in % of base (ratio of sums) ± paired SE, and gradient
steps per prompt; then the worst domain of nn and sift per protocol, the share of prompts
trained, and, when the previous final run (lr 3e-4, gate 0.2) and the committed run with
the old defaults (lr 1e-3, no gate) cover the same documents, standard-protocol sift
paired against both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROTOCOLS = {"standard": "standard", "lodo": "leave-one-domain-out", "first-half": "first half"}
OLD_DEFAULTS = HERE / "results" / "house-small-test"  # issue 6: lr 1e-3, no gate
PREVIOUS = HERE / "results" / "heldout-test"  # lr 3e-4, gate 0.2


def _load(folder: Path) -> dict:
    from siftlm.bench import load_results

    return load_results(folder) if list(folder.glob("results*.jsonl")) else {}


def _common(runs: dict) -> set[str]:
    sets = [{r.doc_id for r in rs} for by in runs.values() for rs in by.values()]
    return set.intersection(*sets) if sets else set()


def _restrict(results, docs: set[str]) -> list:
    return sorted((r for r in results if r.doc_id in docs), key=lambda r: r.doc_id)


def _cell(results, base) -> str:
    from siftlm.evaluation.report import relative_to_base

    value, se = relative_to_base(results, base)
    return f"{value:.1f}% ± {se:.1f} ({np.mean([r.steps for r in results]):.1f} steps)"


def _worst(results, base) -> str:
    from siftlm.evaluation.report import relative_to_base

    domains = sorted({r.domain for r in results})
    ratio = {
        d: relative_to_base(
            [r for r in results if r.domain == d], [b for b in base if b.domain == d]
        ).value
        for d in domains
    }
    worst = max(ratio, key=ratio.get)
    return f"{ratio[worst]:.1f}% ({worst})"


def table(folder: Path) -> str:
    from siftlm.evaluation.report import aggregate_bpb

    runs = {p: _load(folder / p) for p in PROTOCOLS if (folder / p).exists()}
    docs = _common(runs)
    if not docs:
        raise SystemExit(f"no document has every result yet under {folder}")
    methods = list(runs["standard"]) if "standard" in runs else list(next(iter(runs.values())))
    header = "| method | " + " | ".join(PROTOCOLS[p] for p in runs) + " |"
    lines = [f"{len(docs)} documents in every column.", "", header]
    lines.append("| --- | " + " | ".join("---:" for _ in runs) + " |")
    for method in methods:
        cells = []
        for by in runs.values():
            if method not in by:
                cells.append("—")
                continue
            mine, base = _restrict(by[method], docs), _restrict(by["base"], docs)
            cells.append(
                f"{aggregate_bpb(mine).value:.3f} bpb" if method == "base" else _cell(mine, base)
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Worst domain (% of base) and share of prompts trained:", ""]
    for protocol, by in runs.items():
        base = _restrict(by["base"], docs)
        for method in ("nn", "sift"):
            mine = _restrict(by[method], docs)
            trained = np.mean([r.steps > 0 for r in mine])
            lines.append(
                f"- {PROTOCOLS[protocol]}, {method}: worst domain {_worst(mine, base)}; "
                f"trained on {100 * trained:.0f}% of prompts"
            )
    lines += _against_previous(runs, docs)
    return "\n".join(lines) + "\n"


def _against_previous(runs: dict, docs: set[str]) -> list[str]:
    """Standard sift on the same documents: this run, the previous final run and the
    old defaults (each paired with its own base, which is the same model)."""
    from siftlm.evaluation.report import relative_to_base

    if "standard" not in runs:
        return []
    found = {"this run": runs["standard"]}
    for name, folder in (("lr 3e-4, gate 0.2", PREVIOUS / "standard"), ("old", OLD_DEFAULTS)):
        if folder.exists():
            found[name] = _load(folder)
    shared = set(docs)
    for by in found.values():
        shared &= {r.doc_id for r in by.get("sift", [])} & {r.doc_id for r in by.get("base", [])}
    if len(found) < 2 or not shared:
        return []
    parts = []
    for name, by in found.items():
        value = relative_to_base(_restrict(by["sift"], shared), _restrict(by["base"], shared))
        parts.append(f"{name} {value.value:.1f}%")
    return [
        "",
        f"Standard-protocol sift on the {len(shared)} shared documents: " + "; ".join(parts),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE / "results" / "heldout-final")
    args = parser.parse_args()
    text = table(args.folder)
    (args.folder / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
