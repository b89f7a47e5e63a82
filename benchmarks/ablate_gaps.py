"""Where is SIFT's lead over nn largest? Per-domain and per-document gaps of the ablations.

    python benchmarks/ablate_gaps.py            # -> benchmarks/ablate/gaps.md
    python benchmarks/ablate_gaps.py --split test
    python benchmarks/ablate_gaps.py --domains benchmarks/results/house-small-test

For every finished nn + sift condition of ``benchmarks/ablate.py`` (validation, or the test
split's folder): sift's bits in % of nn's per domain (ratio of sums over the domain's
documents), the best domain, the documents where sift's bits are <= 95 % of nn's (a 5 %
relative gap) and >= 105 % (nn 5 % better), and how many of each method's picks are
injected copies (ids past the store's: the duplication conditions) or repeats of one id.
``--domains FOLDER``: sift/nn per domain (± paired SE) of any bench results folder with
nn and sift, e.g. the 350-document test benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ablate_conditions as conditions

STORE_SIZE = 30351  # chunks in stores/minipile-all-MiniLM-L6-v2; copies get ids from here


def sift_of_nn(sift: list, nn: list) -> dict:
    """domain (and ``report.ALL``) -> sift's bits in % of nn's on the same documents
    (ratio of sums, paired SE): ``siftlm.evaluation.report.domain_table`` with nn as base."""
    from siftlm.evaluation.report import domain_table

    table = domain_table({"nn": nn, "sift": sift}, base="nn")
    return {domain: table.cells[domain, "sift"].percent for domain in table.domains}


def _pick_stats(results: list) -> tuple[float, float]:
    """Mean per document: picks that are injected copies, and picks repeating an id."""
    copies = [sum(i >= STORE_SIZE for i in r.selected_ids) for r in results]
    repeats = [len(r.selected_ids) - len(set(r.selected_ids)) for r in results]
    return sum(copies) / len(results), sum(repeats) / len(results)


def condition_gaps(out: Path, condition: conditions.Condition) -> dict | None:
    from ablate_summary import load

    from siftlm.evaluation.report import ALL

    nn = load(out, condition.nn_from or condition.name, "nn")
    sift = load(out, condition.name, "sift")
    docs = sorted(set(nn) & set(sift))
    if not docs:
        return None
    domains = {
        d: e.value for d, e in sift_of_nn([sift[d] for d in docs], [nn[d] for d in docs]).items()
    }
    overall = domains.pop(ALL)
    per_doc = {d: 100.0 * sift[d].nll_nats / nn[d].nll_nats for d in docs}
    best = min(domains, key=domains.get)
    return {
        "name": condition.name,
        "docs": len(docs),
        "all": overall,
        "best_domain": (best, domains[best]),
        "sift_5": sum(v <= 95.0 for v in per_doc.values()),
        "nn_5": sum(v >= 105.0 for v in per_doc.values()),
        "best_doc": min(per_doc.values()),
        "nn_picks": _pick_stats([nn[d] for d in docs]),
        "sift_picks": _pick_stats([sift[d] for d in docs]),
    }


def markdown(rows: list[dict], split: str) -> str:
    head = (
        f"# sift/nn by domain and document ({split} split)\n\n"
        "Made by `python benchmarks/ablate_gaps.py"
        + (" --split test" if split == "test" else "")
        + "`. sift/nn: sift's bits in % of nn's (ratio of sums); best domain: the domain "
        "with the lowest sift/nn (2 documents each); docs <= 95 %: documents where sift's "
        "bits are at most 95 % of nn's; >= 105 %: nn 5 % better; copies / repeats: mean "
        "picks per document that are injected copies / repeat an id already picked.\n\n"
        "| condition | docs | sift/nn | best domain | docs <= 95 % | docs >= 105 % "
        "| best document | nn copies / repeats | sift copies / repeats |\n"
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = [
        f"| {r['name']} | {r['docs']} | {r['all']:.1f}% | {r['best_domain'][0]} "
        f"{r['best_domain'][1]:.1f}% | {r['sift_5']} | {r['nn_5']} | {r['best_doc']:.1f}% "
        f"| {r['nn_picks'][0]:.1f} / {r['nn_picks'][1]:.1f} "
        f"| {r['sift_picks'][0]:.1f} / {r['sift_picks'][1]:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def domains_markdown(folder: Path) -> str:
    """sift/nn per domain of a bench results folder (ratio of sums ± paired SE)."""
    from siftlm.bench import load_results
    from siftlm.evaluation.report import ALL

    results = load_results(folder)
    nn = {r.doc_id: r for r in results["nn"]}
    sift = {r.doc_id: r for r in results["sift"]}
    docs = sorted(set(nn) & set(sift))
    estimates = sift_of_nn([sift[d] for d in docs], [nn[d] for d in docs])
    rows = []
    for domain, estimate in estimates.items():
        if domain == ALL:
            continue
        mine = [d for d in docs if nn[d].domain == domain]
        gaps = sum(sift[d].nll_nats <= 0.95 * nn[d].nll_nats for d in mine)
        rows.append((estimate.value, domain, estimate.se, len(mine), gaps))
    lines = [
        f"| {domain} | {count} | {value:.1f}% ± {se:.1f} | {gaps} |"
        for value, domain, se, count, gaps in sorted(rows)
    ]
    head = (
        f"sift/nn by domain, `{folder}`\n\n| domain | docs | sift/nn | docs <= 95 % |\n"
        "| --- | ---: | ---: | ---: |\n"
    )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--domains", type=Path, help="a bench results folder instead")
    args = parser.parse_args()
    if args.domains:
        print(domains_markdown(args.domains))
        return
    out = conditions.out_folder(args.split)
    rows = []
    for condition in conditions.CONDITIONS:
        if "nn" in condition.methods or condition.nn_from:
            if "sift" in condition.methods:
                found = condition_gaps(out, condition)
                rows += [found] if found else []
    text = markdown(rows, args.split)
    (out / "gaps.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
