"""The shipped tasks: rebuilt from the corpus they equal the committed files; they load
offline; the rolling metric counts the bytes the backend scored."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")  # the optional extra siftlm[eval]

import json  # noqa: E402

from lm_eval.tasks import TaskManager  # noqa: E402

from siftlm.data import DOMAINS  # noqa: E402
from siftlm.harness import TASKS_DIR  # noqa: E402
from siftlm.harness.build import build_tasks  # noqa: E402
from siftlm.harness.model import RollingLogLikelihood  # noqa: E402
from siftlm.harness.run import attach_facts  # noqa: E402
from siftlm.harness.tasks_data import process_rolling  # noqa: E402


def test_shipped_tasks_are_the_build_of_the_corpus(tmp_path, monkeypatch):
    monkeypatch.delenv("SIFTLM_CORPUS_DIR", raising=False)
    for path in build_tasks(tmp_path):
        shipped = TASKS_DIR / path.name
        assert shipped.read_bytes() == path.read_bytes(), f"{shipped} is stale: rebuild it"


def test_wordnet_define_questions_are_well_formed():
    rows = [json.loads(line) for line in (TASKS_DIR / "wordnet_define.jsonl").open()]
    assert len(rows) >= 200
    for row in rows:
        assert len(row["choices"]) == len(set(row["choices"])) == 4
        answer = row["choices"][row["label"]]
        assert answer.lower() not in row["definition"].lower()
        assert "[syn" not in row["definition"] and '"' not in row["definition"]


def test_tasks_load_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    names = manager.all_tasks
    assert {f"minipile_{d}" for d in DOMAINS} | {"minipile", "wordnet_define"} <= set(names)
    tasks = manager.load(["wordnet_define", "minipile_math"])["tasks"]
    docs = {name: list(task.test_docs()) for name, task in tasks.items()}
    assert len(docs["wordnet_define"]) >= 200 and docs["minipile_math"][0]["domain"] == "math"


def test_rolling_metric_counts_the_scored_bytes():
    text = "first half é, second half ü"
    whole = process_rolling({"text": text}, [-10.0])
    assert whole["bits_per_byte"] == (-10.0, len(text.encode())) == whole["byte_perplexity"]
    tail = "second half ü"
    half = process_rolling({"text": text}, [RollingLogLikelihood(-4.0, len(tail.encode()))])
    assert half["bits_per_byte"] == (-4.0, len(tail.encode()))
    assert half["word_perplexity"] == (-4.0, 3)


def test_facts_join_the_logged_samples():
    samples = {"t": [{"doc_id": 0}, {"doc_id": 1}], "u": [{"doc_id": 0}]}
    facts = {("t", 0, 1): {"steps": 2}, ("t", 0, 0): {"steps": 1}, ("t", 1, 2): {"steps": 3}}
    assert attach_facts(samples, facts) == 2
    assert samples["t"][0]["ttft"] == [{"steps": 1}, {"steps": 2}]
    assert "ttft" not in samples["u"][0]


@pytest.mark.parametrize("bad", [["bench", "--no-such-option"], ["index", "--tasks", "x"]])
def test_other_commands_still_refuse_unknown_arguments(bad):
    from siftlm.cli import main

    with pytest.raises(SystemExit):
        main(bad)
