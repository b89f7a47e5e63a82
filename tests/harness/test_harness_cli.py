"""``siftlm eval`` end to end: the harness's own arguments, a saved tiny model, a shipped
task, results and samples with the per-request facts."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")  # the optional extra siftlm[eval]

import json  # noqa: E402

from siftlm.cli import main  # noqa: E402


def test_siftlm_eval_runs_a_shipped_task(corpus_dir, model, tokenizer, tmp_path, capsys):
    folder = tmp_path / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--model_args",
            f"pretrained={folder}",
            "method=base",
            "--tasks",
            "minipile_math",
            "--output_path",
            str(out),
            "--log_samples",
            "--batch_size",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "minipile_math" in printed and "bits_per_byte" in printed
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["minipile_math"]
    assert results["bits_per_byte,none"] > 0
    (samples_file,) = out.rglob("samples_minipile_math_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 2
    assert all(s["ttft"][0]["method"] == "base" for s in samples)


def test_siftlm_eval_bad_model_args_is_one_clear_line(corpus_dir, capsys):
    code = main(
        ["eval", "--model_args", "pretrained=house-small", "colour=red", "--tasks", "minipile_math"]
    )
    assert code == 2
    assert "unknown model_args for siftlm: 'colour'" in capsys.readouterr().err


def test_siftlm_eval_runs_the_harness_own_models(corpus_dir, capsys):
    """Registering "siftlm" keeps the harness's models ("dummy" here, "hf" alike)."""
    assert main(["eval", "--model", "dummy", "--tasks", "minipile_math"]) == 0
    assert "minipile_math" in capsys.readouterr().out


def test_python_api_by_name(corpus_dir, model, tokenizer, tmp_path):
    """After ``import siftlm.harness.model``, the harness finds the model by name."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import siftlm.harness.model  # noqa: F401  (registers "siftlm")
    from siftlm.harness import TASKS_DIR

    folder = tmp_path / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    results = simple_evaluate(
        model="siftlm",
        model_args={"pretrained": str(folder), "method": "base", "progress": False},
        tasks=["minipile_legal"],
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        device="cpu",
    )
    assert results["results"]["minipile_legal"]["bits_per_byte,none"] > 0
