"""Do the package defaults carry over to house-small-4x? (issue 16: a stronger default base)

    # the four runs (validation, first 2 documents per domain, the package defaults):
    for m in house-small runs/house-small-4x; do
      siftlm bench --model $m --split validation --docs-per-domain 2 --methods base nn sift \\
          --curve-methods none --exclude same-domain --out benchmarks/results/defaults-4x/lodo-$(basename $m)
      siftlm bench --model $m --split validation --docs-per-domain 2 --methods base nn sift \\
          --curve-methods none --out benchmarks/results/defaults-4x/standard-$(basename $m)
    done
    python benchmarks/defaults_4x.py   # -> benchmarks/results/defaults-4x/table.md

Per model and protocol: nn and sift in % of the model's own base bits (ratio of sums ±
paired SE over documents), the worst domain (ratio of sums over its 2 documents) and the
documents that trained (the variance gate answers the others with the base model).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "defaults-4x"
MODELS = ("house-small", "house-small-4x")
PROTOCOLS = (("standard", "standard"), ("lodo", "leave-one-domain-out"))


def cells(folder: Path) -> list[str]:
    from siftlm.bench import load_results
    from siftlm.evaluation.report import relative_to_base

    results = load_results(folder)
    base = {r.doc_id: r for r in results["base"]}
    found = []
    for method in ("nn", "sift"):
        mine = results[method]
        theirs = [base[r.doc_id] for r in mine]
        estimate = relative_to_base(mine, theirs)
        domains: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for r, b in zip(mine, theirs, strict=True):
            domains[r.domain][0] += r.nll_nats
            domains[r.domain][1] += b.nll_nats
        worst = max(domains, key=lambda d: domains[d][0] / domains[d][1])
        trained = sum(r.steps > 0 for r in mine)
        found.append(
            f"{estimate.value:.2f}% ± {estimate.se:.2f} | {worst} "
            f"{100 * domains[worst][0] / domains[worst][1]:.1f}% | {trained} of {len(mine)}"
        )
    return found


def main() -> None:
    lines = [
        "# The package defaults with house-small and house-small-4x (validation, 28 documents)",
        "",
        "Made by `python benchmarks/defaults_4x.py` (commands in its docstring).",
        "",
        "| protocol | model | nn, % of base | nn worst domain | nn trained "
        "| sift, % of base | sift worst domain | sift trained |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for folder_name, label in PROTOCOLS:
        for model in MODELS:
            nn, sift = cells(OUT / f"{folder_name}-{model}")
            lines.append(f"| {label} | {model} | {nn} | {sift} |")
    text = "\n".join(lines) + "\n"
    (OUT / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
