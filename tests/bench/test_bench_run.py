"""The benchmark runner: results per (method, document), resume after an interruption,
a changed configuration refused, the report made from the saved results."""

from __future__ import annotations

import json

import pytest

from siftlm.bench import BenchConfig, load_results, make_report, run_bench
from siftlm.bench.results import ResultsFile
from siftlm.data import Document
from siftlm.testing import ngram_embedder, tiny_bench_parts
from siftlm.training import ListMemory

TOPICS = {
    "math": "What is 12 plus {i}? The answer is {j}. Solve for x: x + {i} = {j}.",
    "code": "def add_{i}(x):\n    return x + {j}  # adds {j} to x\n",
    "verse": "O gentle night number {i}, thou art sweeter than {j} roses in the rain.",
}


def make_documents(kind: str, count: int, offset: int = 0) -> list[Document]:
    return [
        Document(
            id=f"{kind}-{offset + i}",
            domain=kind,
            source="test",
            license="CC0",
            text=TOPICS[kind].format(i=offset + i, j=2 * (offset + i) + 1) * 2,
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def setup():
    model, tokenizer, memory = tiny_bench_parts(
        [d for kind in TOPICS for d in make_documents(kind, 12)]
    )
    tests = [d for kind in TOPICS for d in make_documents(kind, 2, offset=100)]
    return model, tokenizer, memory, tests


def config(tmp_path, **overrides) -> BenchConfig:
    values = dict(
        methods=("base", "nn", "sift"),
        n=4,
        k=8,
        lr=1e-3,
        curve_methods=("nn", "sift"),
        out=str(tmp_path / "run"),
        progress=False,
    )
    values.update(overrides)
    return BenchConfig(**values)


def run(cfg, setup):
    model, tokenizer, memory, tests = setup
    return run_bench(cfg, model=model, tokenizer=tokenizer, store=memory, documents=tests)


def records_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def records(out) -> list[dict]:
    return records_of(out / "results.jsonl")


def test_every_method_on_every_document_in_document_order(tmp_path, setup):
    out = run(config(tmp_path), setup)
    rows = records(out)
    tests = setup[3]
    assert [(r["doc_id"], r["method"]) for r in rows] == [
        (d.id, m) for d in tests for m in ("base", "nn", "sift")
    ]
    saved = json.loads((out / "config.json").read_text())
    assert saved["n"] == 4 and saved["ttt"]["sift"]["method"] == "sift"
    by_method = load_results(out)
    assert all(r.n_selected == 4 and r.steps >= 4 for r in by_method["nn"])
    assert all(r.steps == 0 for r in by_method["base"])


def test_interrupted_run_resumes_to_the_same_results(tmp_path, setup):
    whole = records(run(config(tmp_path / "a"), setup))

    cfg = config(tmp_path / "b")
    out = run(cfg, setup)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # a crash after 4 complete results, in the middle of writing the fifth
    (out / "results.jsonl").write_text("".join(lines[:4]) + lines[4][:25])
    assert len(ResultsFile(out / "results.jsonl").done) == 4
    run(cfg, setup)
    resumed = records(out)

    def key(rows):
        return [(r["doc_id"], r["method"], r["nll_nats"], r["selected_ids"]) for r in rows]

    assert key(resumed) == key(whole)


def test_workers_share_the_documents_and_their_files_merge(tmp_path, setup):
    whole = load_results(run(config(tmp_path / "one"), setup))
    for rank in (0, 1):
        out = run(config(tmp_path / "two", rank=rank, world_size=2), setup)
    assert sorted(p.name for p in out.glob("results*.jsonl")) == [
        "results-0-of-2.jsonl",
        "results-1-of-2.jsonl",
    ]
    shares = [len(records_of(out / f"results-{r}-of-2.jsonl")) for r in (0, 1)]
    assert shares == [9, 9]  # 6 documents, 3 methods, every other document each
    merged = load_results(out)

    def key(by_method):
        return {m: sorted((r.doc_id, r.nll_nats) for r in rs) for m, rs in by_method.items()}

    assert key(merged) == key(whole)
    # a single worker resuming the folder finds everything done
    before = {p.name: p.read_bytes() for p in out.glob("results*.jsonl")}
    run(config(tmp_path / "two"), setup)
    assert {p.name: p.read_bytes() for p in out.glob("results*.jsonl")} == before


def test_resume_with_another_configuration_is_refused(tmp_path, setup):
    run(config(tmp_path), setup)
    with pytest.raises(ValueError, match="lr: 0.001 there, 0.01 now"):
        run(config(tmp_path, lr=1e-2), setup)


@pytest.mark.parametrize(
    ("key", "value"), [("store_chunks_sha256", "0" * 64), ("n_parameters", 123)]
)
def test_resume_with_another_store_or_model_is_refused(tmp_path, setup, key, value):
    out = run(config(tmp_path), setup)
    saved = json.loads((out / "config.json").read_text())
    saved[key] = value
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=f"another model or datastore \\({key}: "):
        run(config(tmp_path), setup)


def test_altered_results_file_is_reported(tmp_path, setup):
    out = run(config(tmp_path), setup)
    path = out / "results.jsonl"
    path.write_text("{not json}\n" + path.read_text())
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        ResultsFile(path)


def test_report_has_the_domain_table_and_plots(tmp_path, setup):
    out = run(config(tmp_path), setup)
    markdown = make_report(out)
    assert "| domain | docs | base | nn | sift |" in markdown
    for kind in TOPICS:
        assert f"| {kind} | 2 |" in markdown
    assert "| sift | nn | " in markdown.split("## Paired comparisons")[1]
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "uncertainty.png").stat().st_size > 0
    assert (out / "report.md").read_text() == markdown
    assert "Redundancy of the picks not computed: the run's config names no datastore" in markdown


def test_report_measures_the_redundancy_of_the_picks(tmp_path, setup):
    out = run(config(tmp_path), setup)
    memory = setup[2]
    markdown = make_report(out, store=memory)
    assert "| method | distinct sequences | mean pairwise cosine | near-copy pairs |" in markdown
    section = markdown.split("## Redundancy of the picks")[1].split("##")[0]
    methods = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| ")]
    assert methods == ["| method", "| ---", "| nn", "| sift"]  # base trains on nothing
    assert "| nn | 100% |" in section  # nn picks each candidate once
    assert "SIFT's gain over nn per prompt" in markdown
    assert (out / "redundancy.png").stat().st_size > 0
    missing = make_report(out, store=tmp_path / "no-store", force=True)  # another store
    assert "not computed: its datastore is not available (no store at" in missing


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": ("sift", "bogus")}, "unknown method 'bogus'"),
        ({"methods": ()}, "at least one method"),
        ({"methods": ("nn", "nn")}, "repeats"),
        ({"docs_per_domain": 0}, "docs_per_domain"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"n": 0}, "n \\(sequences to select\\)"),
    ],
)
def test_bad_configuration(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **overrides)


def test_report_compares_with_another_run(tmp_path, setup):
    out = run(config(tmp_path / "small"), setup)
    other = run(config(tmp_path / "big", methods=("base",), model="bigger"), setup)
    markdown = make_report(out, compare=[other])
    assert "| domain | docs | base | nn | sift | bigger:base |" in markdown
    assert "100.0%" in markdown.split("bigger:base |")[1]  # the same model: as base
    # the same model, so base against bigger:base is equal on every document
    assert "| base | bigger:base | 100.0% ± 0.0 | 0 / 6 of 6 |" in markdown


def test_a_refused_run_writes_nothing(tmp_path, setup):
    # k beyond the memory's size: refused before any file is written
    with pytest.raises(ValueError, match="exceed the datastore"):
        run(config(tmp_path, k=10_000), setup)
    assert not (tmp_path / "run" / "config.json").exists()
    assert not list((tmp_path / "run").glob("results*.jsonl"))
    # and the folder is free for a valid run
    out = run(config(tmp_path), setup)
    assert (out / "config.json").exists() and records(out)


def test_a_second_process_on_the_same_worker_share_is_refused(tmp_path, setup):
    from siftlm.bench.runner import locked

    out = tmp_path / "run"
    with locked(out / ".results.jsonl.lock", "results folder"):  # another run holds it
        with pytest.raises(ValueError, match="in use by pid"):
            run(config(tmp_path), setup)
    assert not (out / "config.json").exists()
    # other workers' shares may run alongside
    with locked(out / ".results-0-of-2.jsonl.lock", "results folder"):
        run(config(tmp_path, rank=1, world_size=2), setup)
    assert (out / "results-1-of-2.jsonl").exists()


def test_held_out_protocols_are_recorded(tmp_path, setup):
    out = run(config(tmp_path, exclude="same-domain", query="first-half"), setup)
    saved = json.loads((out / "config.json").read_text())
    assert saved["exclude"] == "same-domain" and saved["query"] == "first-half"
    assert saved["ttt"]["sift"]["exclude"] == "same-domain"
    memory = setup[2]
    for result in load_results(out)["sift"]:
        assert all(memory.domains[i] != result.domain for i in result.selected_ids)
    with pytest.raises(ValueError, match="another configuration"):
        run(config(tmp_path, exclude="same-source", query="first-half"), setup)


def test_query_vectors_are_recorded_and_used(tmp_path, setup):
    model, tokenizer, memory, tests = setup
    chunked = ListMemory(
        memory.texts,
        ngram_embedder(dim=32),
        domains=memory.domains,
        doc_ids=memory.doc_ids,
        max_tokens=64,
    )
    cfg = config(tmp_path, methods=("nn", "sift"), query_vectors="chunks", target_tokens=8)
    out = run_bench(cfg, model=model, tokenizer=tokenizer, store=chunked, documents=tests)
    saved = json.loads((out / "config.json").read_text())
    assert saved["query_vectors"] == "chunks" and saved["target_tokens"] == 8
    assert saved["max_targets"] is None
    assert saved["ttt"]["sift"]["query_vectors"] == "chunks"
    results = load_results(out)
    assert all(r.n_targets > 1 for r in results["sift"] + results["nn"])
    with pytest.raises(ValueError, match="another configuration"):
        run_bench(
            config(tmp_path, methods=("nn", "sift"), query_vectors="chunks", target_tokens=16),
            model=model,
            tokenizer=tokenizer,
            store=chunked,
            documents=tests,
        )
    default = run(config(tmp_path / "default"), setup)
    assert json.loads((default / "config.json").read_text())["query_vectors"] == "one"
    assert all(r.n_targets is None for r in load_results(default)["sift"])
