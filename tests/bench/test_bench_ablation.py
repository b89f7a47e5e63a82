"""The benchmark's memory ablations (memory_fraction, duplicates) and the ablation
driver's summary (benchmarks/ablate.py) on a tiny model and memory made here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from siftlm.bench import BenchConfig, load_results, run_bench
from siftlm.bench.results import ResultsFile, results_path
from siftlm.data import Document
from siftlm.testing import tiny_bench_parts
from siftlm.training import DocumentResult
from siftlm.training.memory_subset import kept_ids

ABLATE = Path(__file__).resolve().parents[2] / "benchmarks" / "ablate.py"
PHRASES = {
    "math": "What is {i} plus {j}? The answer is {k}, and {i} times two is {j}.",
    "code": "def add_{i}(x):\n    return x + {j}  # adds {j}, then {k}\n",
}


def documents(count: int, offset: int = 0) -> list[Document]:
    return [
        Document(
            id=f"{domain}-{offset + i}",
            domain=domain,
            source="test",
            license="CC0",
            text=phrase.format(i=offset + i, j=3 * (offset + i), k=7 * (offset + i)),
        )
        for domain, phrase in PHRASES.items()
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def setup():
    return (*tiny_bench_parts(documents(15)), documents(1, offset=100))


def run(tmp_path, setup, **overrides) -> Path:
    model, tokenizer, memory, tests = setup
    config = BenchConfig(
        **{
            "methods": ("nn", "sift"),
            "n": 4,
            "k": 6,
            "lr": 1e-3,
            "curve_methods": (),
            "out": str(tmp_path / "run"),
            "progress": False,
            **overrides,
        }
    )
    return run_bench(config, model=model, tokenizer=tokenizer, store=memory, documents=tests)


def test_bad_ablation_options_are_refused():
    with pytest.raises(ValueError, match="memory_fraction"):
        BenchConfig(memory_fraction=0.0)
    with pytest.raises(ValueError, match="duplicates"):
        BenchConfig(duplicates=1.5)
    with pytest.raises(ValueError, match="duplicate_kind"):
        BenchConfig(duplicate_kind="fuzzy")


def test_a_memory_fraction_is_recorded_and_selects_only_kept_ids(tmp_path, setup):
    out = run(tmp_path, setup, memory_fraction=0.5, seed=3)
    assert json.loads((out / "config.json").read_text())["memory_fraction"] == 0.5
    kept = set(kept_ids(len(setup[2]), 0.5, seed=3).tolist())
    for results in load_results(out).values():
        for result in results:
            assert result.selected_ids and set(result.selected_ids) <= kept


def test_exact_duplicates_reach_the_selection(tmp_path, setup):
    memory = setup[2]
    out = run(tmp_path, setup, duplicates=1.0)
    saved = json.loads((out / "config.json").read_text())
    assert (saved["duplicates"], saved["duplicate_kind"]) == (1.0, "exact")
    nn = load_results(out)["nn"]
    # every original near the prompt has a copy tied with it: nn takes pairs
    for result in nn:
        originals = [i for i in result.selected_ids if i < len(memory)]
        copies = [i for i in result.selected_ids if i >= len(memory)]
        assert len(originals) == len(copies) == 2


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate", ABLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake(folder: Path, method: str, bits: dict[str, float]) -> None:
    """Results of ``method`` with the given nats per document (100 bytes each)."""
    folder.mkdir(parents=True, exist_ok=True)
    results = ResultsFile(results_path(folder))
    for doc_id, nats in bits.items():
        results.append(DocumentResult(doc_id, "d", method, nats, 100, 50, 0, 0, 0, None, None, ()))


def test_summarize_makes_a_table_and_a_plot_per_ablation(tmp_path):
    ablate = _ablate()
    runs = tmp_path / "runs"
    docs = ["a", "b", "c"]
    _fake(runs / "base", "base", dict.fromkeys(docs, 100.0))
    _fake(runs / "all", "nn", {"a": 80.0, "b": 90.0, "c": 70.0})
    _fake(runs / "all", "sift", {"a": 72.0, "b": 90.0, "c": 63.0})
    _fake(runs / "lambda-0.01", "sift", {"a": 60.0, "b": 95.0})  # unfinished: 2 documents
    _fake(runs / "lambda-0.01", "nn", {"a": 80.0, "b": 90.0, "c": 70.0})  # nn as in "all"
    _fake(runs / "memory-0.25", "nn", {"a": 90.0})  # no sift yet: left out
    ablate.main(["summarize", "--out", str(tmp_path)])
    summary = (tmp_path / "summary.md").read_text()
    # "all": nn 240/300 = 80 %, sift 225/300 = 75 %, sift/nn 225/240 = 93.75 %, 2 of 3 better
    assert "| all | 3 | 80.0% ± " in summary
    assert "| 75.0% ± " in summary and "| 93.8% ± " in summary and "| 2 of 3 |" in summary
    # λ 0.01 (nn from "all" or its own, the same here): on a and b, nn 170, sift 155
    assert "| 0.01 | 2 | 85.0% ± " in summary and "| 91.2% ± " in summary
    assert "| ¼ |" not in summary
    assert "## Duplication" in summary and "| none | 3 |" in summary
    for ablation in ("memory", "duplication", "lambda"):
        assert (tmp_path / f"{ablation}.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "ablate.json").read_text())
    assert [row["condition"] for row in saved["tables"]["lambda"]] == ["lambda-0.01", "all"]
