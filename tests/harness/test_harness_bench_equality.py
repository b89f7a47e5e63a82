"""The harness's bits per byte on the minipile tasks equals ``siftlm bench`` on the
same documents and configuration (base, nn, sift), through the shipped task YAML."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")  # the optional extra siftlm[eval]

import math  # noqa: E402

from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from siftlm.bench import BenchConfig, run_bench  # noqa: E402
from siftlm.bench.results import load_results, results_path  # noqa: E402
from siftlm.data import load_corpus  # noqa: E402
from siftlm.harness import TASKS_DIR  # noqa: E402
from siftlm.harness.model import SiftLM  # noqa: E402

DOMAINS = ("legal", "math")


def bench_bpb(results) -> dict[str, float]:
    """Per domain: summed NLL over summed bytes (bench's ratio of sums), in bits."""
    out = {}
    for domain in DOMAINS:
        mine = [r for r in results if r.domain == domain]
        out[domain] = sum(r.nll_nats for r in mine) / (math.log(2) * sum(r.n_bytes for r in mine))
    return out


@pytest.mark.parametrize(
    ("method", "protocol"),
    [
        ("base", {}),
        ("nn", {}),
        ("sift", {}),
        ("sift", {"query": "first-half"}),
        ("sift", {"exclude": "same-domain"}),
    ],
)
def test_harness_bpb_equals_bench(method, protocol, corpus_dir, model, tokenizer, memory, tmp_path):
    documents = load_corpus("test")
    assert {d.domain for d in documents} == set(DOMAINS)
    config = BenchConfig(
        methods=(method,),
        n=3,
        k=6,
        lambda_=0.1,
        lr=1e-3,
        variance_gate=None,  # train on every document (the tiny memory is far from them)
        out=str(tmp_path / "bench"),
        progress=False,
        **protocol,
    )
    run_bench(config, model=model, tokenizer=tokenizer, store=memory, documents=documents)
    bench = bench_bpb(load_results(results_path(config.out))[method])

    ttt = config.ttt_config(method).to_dict()  # every TTTConfig field, by name
    lm = SiftLM(pretrained=model, tokenizer=tokenizer, store=memory, progress=False, **ttt)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    results = simple_evaluate(
        model=lm,
        tasks=[f"minipile_{d}" for d in DOMAINS],
        task_manager=manager,
        log_samples=False,
    )["results"]
    for domain in DOMAINS:
        harness = results[f"minipile_{domain}"]["bits_per_byte,none"]
        assert harness == pytest.approx(bench[domain], rel=1e-6), domain
    steps = [facts["steps"] for facts in lm.facts.values()]
    assert steps == [0 if method == "base" else 3] * len(documents)
    scored = sorted(facts["n_bytes"] for facts in lm.facts.values())
    whole = sorted(len(d.text.encode("utf-8")) for d in documents)
    if protocol.get("query") == "first-half":  # the second half only
        assert all(s < w for s, w in zip(scored, whole, strict=True))
    else:
        assert scored == whole
