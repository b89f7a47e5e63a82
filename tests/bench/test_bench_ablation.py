"""The benchmark's memory ablations (memory_fraction, duplicates) and the ablation
driver's summary (benchmarks/ablate.py) on a tiny model and memory made here."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import threading
from pathlib import Path

import pytest

from siftlm.bench import BenchConfig, load_results, run_bench
from siftlm.bench.results import ResultsFile, results_path
from siftlm.data import Document
from siftlm.testing import ngram_embedder, tiny_gpt2, tiny_tokenizer
from siftlm.training import DocumentResult, ListMemory
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
    memory_docs = documents(15)
    tokenizer = tiny_tokenizer([d.text for d in memory_docs])
    model = tiny_gpt2(tokenizer, n_positions=48)
    memory = ListMemory(
        [d.text for d in memory_docs],
        ngram_embedder(dim=32),
        domains=[d.domain for d in memory_docs],
        doc_ids=[d.id for d in memory_docs],
    )
    return model, tokenizer, memory, documents(1, offset=100)


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


# issue 16, items 3 to 5: the query, embedder, base-strength and rival conditions


def _helpers():
    _ablate()  # puts benchmarks/ on sys.path
    import ablate_conditions
    import ablate_summary

    return ablate_conditions, ablate_summary


def test_the_first_conditions_stay_as_they_were_and_the_new_ones_follow():
    conditions, _ = _helpers()
    old = [(c.name, c.overrides, c.methods, c.model, c.store) for c in conditions.CONDITIONS[:10]]
    assert [o[0] for o in old] == [
        "base", "all", "dup-exact-30", "dup-near-30", "memory-0.25",
        "lambda-0.01", "memory-0.5", "lambda-1", "dup-exact-10", "dup-near-10",
    ]  # fmt: skip
    assert all(o[3] == "house-small" and o[4] is None for o in old)
    by_name = conditions.BY_NAME
    n = BenchConfig().n
    assert conditions.REUSE_ONCE == n  # r = n: a window's j-th repeat (j < n) reuses j = 0
    assert by_name["sift-reuse"].overrides == {"gradient_reuse": n}
    assert by_name["hull"].methods == by_name["hull-reuse"].methods == ("hull",)
    assert by_name["model-4x"].model == by_name["base-4x"].model == conditions.MODEL_4X
    assert by_name["query-chunks-4"].overrides["max_targets"] == 4
    config = conditions.bench_config(Path("x"), by_name["embed-causal"])
    assert config.store == "stores/minipile-causal-house-small"
    model = conditions.bench_config(Path("x"), by_name["model-4x"], model_4x="elsewhere").model
    assert model == "elsewhere"


def test_the_test_split_runs_its_own_set_into_its_own_folder(tmp_path):
    conditions, _ = _helpers()
    assert conditions.names_for("test") == list(conditions.TEST_CONDITIONS)
    assert conditions.names_for("test", ["hull", "base"]) == ["base", "hull"]
    assert conditions.out_folder("validation") == conditions.OUT
    assert conditions.out_folder("test").name == "ablate-test"
    config = conditions.bench_config(
        conditions.out_folder("test"), conditions.BY_NAME["hull"], split="test"
    )
    assert config.split == "test" and Path(config.out).parent.parent.name == "ablate-test"
    with pytest.raises(SystemExit, match="do not run on the test split"):
        conditions.names_for("test", ["memory-0.25"])
    with pytest.raises(SystemExit, match="unknown conditions"):
        _ablate().main(["run", "--split", "test", "--only", "nope", "--out", str(tmp_path)])


def test_an_unfinished_pretraining_folder_is_not_a_model(tmp_path):
    conditions, _ = _helpers()
    folder = tmp_path / "pretrained"
    folder.mkdir()
    (folder / "pretrain_config.json").write_text(json.dumps({"size": "small"}))
    assert "not finished" in conditions.model_unready(str(folder))
    (folder / "pretrain_config.json").write_text(json.dumps({"finished": 1.0}))
    assert "no model weights" in conditions.model_unready(str(folder))
    (folder / "config.json").write_text("{}")
    assert conditions.model_unready(str(folder)) is None


def test_a_condition_with_another_store_builds_it_once_and_records_it(tmp_path, setup):
    from siftlm.datastore.ingest import SourceDocument

    conditions, _ = _helpers()
    model, tokenizer, _, tests = setup
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    corpus = [SourceDocument(d.id, d.domain, d.text) for d in documents(6)]
    spec = conditions.StoreSpec(
        str(tmp_path / "causal"), f"causal:{tmp_path / 'lm'}", corpus, str(tmp_path / "lm"), 16
    )
    resources = conditions.Resources(
        loader=lambda name: (model, tokenizer), show_progress=False, precomputed=None
    )
    condition = conditions.Condition("embed-x", {}, store=spec)
    ablate = _ablate()
    extra = {"n": 4, "k": 6, "documents": tests}
    # the other worker is building it: this one waits for that build to end, then builds
    other = open(tmp_path / ".causal.lock", "w")  # noqa: SIM115 - released by the timer
    fcntl.flock(other, fcntl.LOCK_EX)
    threading.Timer(1.0, other.close).start()
    out = ablate.run_condition(condition, tmp_path, resources, **extra)
    saved = json.loads((out / "config.json").read_text())
    assert saved["store"] == spec.path and saved["store_path"] == spec.path
    store = resources.store(spec)
    assert store.manifest.chunking["max_tokens"] == 16
    assert store.manifest.embedder["name"].startswith("causal:")
    for results in load_results(out).values():
        assert all(0 <= i < len(store) for r in results for i in r.selected_ids)
    built = (tmp_path / "causal" / "manifest.json").stat().st_mtime_ns
    conditions.Resources(loader=resources.loader).store(spec)  # opened, not rebuilt
    assert (tmp_path / "causal" / "manifest.json").stat().st_mtime_ns == built


def test_model_rival_and_reuse_conditions_and_their_sections(tmp_path, setup):
    conditions, summary = _helpers()
    model, tokenizer, memory, tests = setup
    other = tiny_gpt2(tokenizer, n_positions=48, seed=1)
    models = {"house-small": (model, tokenizer), "stronger": (other, tokenizer)}
    resources = conditions.Resources(memory, loader=models.__getitem__)
    ablate = _ablate()
    names = ("base", "all", "hull", "sift-reuse", "hull-reuse", "base-4x", "model-4x")
    for name in names:
        ablate.run_condition(
            conditions.BY_NAME[name], tmp_path, resources, model_4x="stronger",
            n=4, k=6, lr=1e-3, documents=tests,
        )  # fmt: skip
    runs = tmp_path / "runs"
    assert json.loads((runs / "model-4x" / "config.json").read_text())["model"] == "stronger"
    base, stronger = load_results(runs / "base")["base"], load_results(runs / "base-4x")["base"]
    assert [r.nll_nats for r in base] != [r.nll_nats for r in stronger]
    for method, folder in (("sift", "all"), ("hull", "hull")):
        plain = {r.doc_id: r for r in load_results(runs / folder)[method]}
        for r in load_results(runs / f"{method}-reuse")[method]:
            # reuse: one pass per distinct window (one per sequence here); without: per step
            assert r.selected_ids == plain[r.doc_id].selected_ids
            assert plain[r.doc_id].passes == r.steps == len(r.selected_ids)
            assert r.passes == len(set(r.selected_ids))
    hull = load_results(runs / "hull")["hull"]
    assert any(len(set(r.selected_ids)) < len(r.selected_ids) for r in hull)  # repeats

    found = summary.tables(tmp_path)
    strength = found["base"]
    assert [r["base_folder"] for r in strength] == ["base", "base-4x"]
    bits = sum(r.nll_nats for r in stronger) / math.log(2)
    assert strength[1]["base_bpb"]["value"] == pytest.approx(
        bits / sum(r.n_bytes for r in stronger)
    )
    rival = {r["label"]: r for r in found["rival"]}
    assert rival["sift"]["vs_sift"] is None and rival["hull"]["vs_sift"] is not None
    reuse = rival["hull, gradient reuse"]
    assert reuse["passes"] < reuse["without"]["passes"]
    assert found["query"] == [r for r in found["query"] if r["condition"] == "all"]

    ablate.main(["summarize", "--out", str(tmp_path)])
    text = (tmp_path / "summary.md").read_text()
    for title in ("## Query: first 256", "## Embedder:", "## Base model strength", "## The newest"):
        assert title in text
    assert "| house-small | 2 |" in text and "| stronger | 2 |" in text  # the models run
    assert "without) |" in text and "| hull | 2 |" in text
    for section in ("base", "rival", "query", "embedder"):
        assert (tmp_path / f"{section}.png").stat().st_size > 1000
    ablate.main(["summarize", "--split", "test", "--out", str(tmp_path)])
    assert "## The newest rival" in (tmp_path / "summary.md").read_text()
    assert list(json.loads((tmp_path / "ablate.json").read_text())["tables"]) == ["rival"]
