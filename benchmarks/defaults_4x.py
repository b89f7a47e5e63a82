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

from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "defaults-4x"
MODELS = ("house-small", "house-small-4x")
PROTOCOLS = (("standard", "standard"), ("lodo", "leave-one-domain-out"))


def cells(folder: Path) -> list[str]:
    from siftlm.bench import load_results
    from siftlm.evaluation.report import ALL, domain_table

    results = load_results(folder)
    table = domain_table({m: results[m] for m in ("base", "nn", "sift")})
    found = []
    for method in ("nn", "sift"):
        estimate = table.cells[ALL, method].percent
        domains = [d for d in table.domains if d != ALL]
        worst = max(domains, key=lambda d: table.cells[d, method].percent.value)
        trained = sum(r.steps > 0 for r in results[method])
        found.append(
            f"{estimate.value:.2f}% ± {estimate.se:.2f} | {worst} "
            f"{table.cells[worst, method].percent.value:.1f}% | {trained} of {len(results[method])}"
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
