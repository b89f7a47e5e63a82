"""``bench --ray``: the same result lines as a local run; resumes without duplicates."""

from __future__ import annotations

import pytest
from test_bench_run import config, records, run, setup  # noqa: F401 (setup is a fixture)

from siftlm.bench import make_report
from siftlm.bench.ray_runner import run_bench_ray


def _key(rows: list[dict]) -> list[tuple]:
    """Everything but the timings, by (document, method)."""
    return sorted(
        (r["doc_id"], r["method"], r["nll_nats"], tuple(r["selected_ids"]), str(r["curve"]))
        for r in rows
    )


def test_bench_on_ray_gives_the_local_lines_and_resumes_without_duplicates(
    ray_session,
    tmp_path,
    setup,  # noqa: F811
):
    model, tokenizer, memory, tests = setup
    local = records(run(config(tmp_path / "local"), setup))
    cfg = config(tmp_path / "ray")

    def on_ray():
        return run_bench_ray(
            cfg, model=model, tokenizer=tokenizer, store=memory, documents=tests, actors=2
        )

    out = on_ray()
    assert _key(records(out)) == _key(local)
    assert "sift" in make_report(out)

    # a crash after 4 complete results, in the middle of writing the fifth
    path = out / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[4][:25])
    on_ray()
    rows = records(out)
    assert len({(r["doc_id"], r["method"]) for r in rows}) == len(rows) == len(local)
    assert _key(rows) == _key(local)
    assert path.read_text().splitlines(keepends=True)[:4] == lines[:4]  # appended after


def test_bench_on_ray_refuses_rank_and_world_size(tmp_path, setup):  # noqa: F811
    with pytest.raises(ValueError, match="world-size"):
        run_bench_ray(config(tmp_path, rank=1, world_size=2), documents=setup[3])
