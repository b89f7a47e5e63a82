"""The report of a bench run: written also for one document (a section that cannot be
computed says so), never replacing a report whose content would be lost, and the
command says where it wrote."""

from __future__ import annotations

import json
import shutil

import pytest

from siftlm.bench import BenchConfig, make_report, run_bench
from siftlm.bench.report_file import ReportConflictError
from siftlm.cli import main
from siftlm.data import Document
from siftlm.testing import ngram_embedder, tiny_gpt2, tiny_tokenizer
from siftlm.training import ListMemory

TEXTS = {
    "math": "What is 12 plus {i}? The answer is {j}. Solve for x: x + {i} = {j}. ",
    "verse": "O gentle night number {i}, thou art sweeter than {j} roses in the rain. ",
}


def documents(count: int, offset: int = 0) -> list[Document]:
    return [
        Document(
            id=f"{kind}-{offset + i}",
            domain=kind,
            source="test",
            license="CC0",
            text=text.format(i=offset + i, j=2 * i + 1) * 2,
        )
        for kind, text in TEXTS.items()
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def parts():
    memory_docs = documents(6)
    tokenizer = tiny_tokenizer([d.text for d in memory_docs])
    model = tiny_gpt2(tokenizer, n_positions=48)
    memory = ListMemory([d.text for d in memory_docs], ngram_embedder(dim=16))
    return model, tokenizer, memory


def bench(out, parts, tests, **overrides):
    model, tokenizer, memory = parts
    config = BenchConfig(
        **{
            "methods": ("base", "nn", "sift"),
            "n": 2,
            "k": 4,
            "out": str(out),
            "progress": False,
            **overrides,
        }
    )
    return run_bench(config, model=model, tokenizer=tokenizer, store=memory, documents=tests)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, parts):
    """A small run of two documents and another model's base run on the same ones."""
    root = tmp_path_factory.mktemp("runs")
    tests = documents(1, offset=50)
    bench(root / "small", parts, tests)
    bench(root / "big", parts, tests, methods=("base",), model="bigger")
    return root


@pytest.fixture
def folders(tmp_path, runs):
    shutil.copytree(runs, tmp_path, dirs_exist_ok=True)
    return tmp_path / "small", tmp_path / "big"


def test_one_document_run_gets_its_report(tmp_path, parts):
    """Defect: the report failed after all the work ("correlation needs two ...")."""
    out = bench(tmp_path / "one", parts, documents(1, offset=70)[:1], curve_methods=("sift",))
    markdown = make_report(out)
    assert "| math | 1 |" in markdown
    assert "a correlation needs 2 or more documents, not 1" in markdown
    assert "## Time per prompt" in markdown  # the sections after it are written
    assert (out / "report.md").read_text() == markdown


def test_report_command_says_where_it_wrote(folders, capsys):
    small, _ = folders
    assert main(["report", str(small)]) == 0
    assert f"report written to {small / 'report.md'}" in capsys.readouterr().out


def test_rerun_without_options_keeps_the_compared_column(folders, capsys):
    """Defect: `siftlm report DIR` silently dropped the --compare column."""
    small, big = folders
    assert main(["report", str(small), "--compare", str(big)]) == 0
    assert main(["report", str(small)]) == 0
    captured = capsys.readouterr()
    assert "bigger:base" in (small / "report.md").read_text()
    assert "with the options" in captured.err and str(big) in captured.err


def test_other_options_are_refused_unless_forced(folders, capsys):
    small, big = folders
    make_report(small, compare=[big])
    before = (small / "report.md").read_text()
    with pytest.raises(ReportConflictError, match="was made with --compare"):
        make_report(small, compare=[])
    assert main(["report", str(small), "--compare", str(small)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (small / "report.md").read_text() == before
    assert "bigger:base" not in make_report(small, compare=[], force=True)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda text: text.replace("# Benchmark", "# My benchmark"), "edited after"),
        (lambda text: text.rsplit("<!--", 1)[0], "no record of how it was made"),
        (lambda text: "my notes\n", "no record of how it was made"),
    ],
)
def test_a_report_that_would_lose_content_is_kept(folders, change, why, capsys):
    """Hand-edited, older or foreign report.md: refused, named, not touched."""
    small, _ = folders
    path = small / "report.md"
    path.write_text(change(make_report(small)))
    before = path.read_bytes()
    with pytest.raises(ReportConflictError, match=why):
        make_report(small)
    assert main(["report", str(small)]) == 2
    assert str(path) in capsys.readouterr().err
    assert path.read_bytes() == before
    make_report(small, force=True)
    assert path.read_bytes() != before


def test_bench_keeps_an_edited_report_and_its_results(folders, parts, capsys):
    """After a bench run the results are saved; a report it may not replace is kept."""
    from siftlm.bench.cli import _write_report

    small, _ = folders
    (small / "report.md").write_text("my notes\n")
    _write_report(small)
    assert "report not rewritten" in capsys.readouterr().err
    assert (small / "report.md").read_text() == "my notes\n"


def test_record_holds_compare_folders_relative_to_the_report(folders, monkeypatch):
    small, big = folders
    text = make_report(small, compare=[big])
    record = json.loads(text.rstrip().splitlines()[-1].removeprefix("<!-- siftlm report: ")[:-4])
    assert record["compare"] == ["../big"]
    monkeypatch.chdir(big)  # another working directory: the record still finds it
    assert "bigger:base" in make_report(small)
