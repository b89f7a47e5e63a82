"""The command line: ``python -m siftlm``, help texts, clear errors and warnings."""

from __future__ import annotations

import runpy
import sys

import pytest

from siftlm.cli import main


def test_python_dash_m_siftlm_is_the_command(monkeypatch, capsys):
    """``python -m siftlm`` runs ``siftlm.__main__`` (in-process here: a fresh
    interpreter would time the machine's load, not the module)."""
    monkeypatch.setattr(sys, "argv", ["python -m siftlm", "--version"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("siftlm", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("siftlm ")


@pytest.mark.parametrize("command", ["demo", "bench", "generate", "report", "example"])
def test_help_states_each_default_once(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: all) (default:" not in text
    for chunk in text.split("(default:")[1:]:
        assert "(default:" not in chunk.split(")")[0]
    if command == "demo":
        assert "first N documents of each domain (default: 1)" in text


def test_generate_help_describes_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    lines = capsys.readouterr().out.split("options:")[1].splitlines()
    options = [line.split()[0] for line in lines if line.strip().startswith("-")]
    assert {"--model", "--method", "-n", "-k", "--lr", "--repetition-penalty"} <= set(options)
    described = "\n".join(lines)
    from siftlm.training import TTTConfig

    defaults = TTTConfig()  # generate's selection defaults are the package's
    for option, default in [("-n", defaults.n), ("-k", defaults.k), ("--max-new-tokens", 60)]:
        assert f"(default: {default})" in described, option


def test_example_with_too_many_picks_is_a_clear_error(capsys):
    """Used to fail with an error about method 'nn', which `example` has no option for."""
    assert main(["example", "--n", "10"]) == 2
    error = capsys.readouterr().err
    assert "n (picks per method) must be from 1 to 8" in error and "got 10" in error


def test_more_steps_than_candidates_warns_that_sift_cycles(capsys):
    from siftlm.bench.cli import warn_cycling

    warn_cycling(["base", "sift"], n=20, k=5)
    error = capsys.readouterr().err
    assert "n=20 steps from k=5 candidates" in error and "4.0 times" in error
    warn_cycling(["sift"], n=5, k=5)
    warn_cycling(["nn-f", "base"], n=20, k=5)  # nn-f repeats on purpose
    assert capsys.readouterr().err == ""


def test_generate_runs_end_to_end_and_says_what_it_does(tmp_path, capsys):
    from siftlm.testing import tiny_gpt2, tiny_tokenizer

    tokenizer = tiny_tokenizer(["the cat sat on the mat", "a dog ran in the park"])
    tiny_gpt2(tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    argv = ["generate", "the cat", "--model", str(tmp_path), "--method", "base"]
    assert main([*argv, "--no-compare", "--max-new-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert "--- after test-time fine-tuning (base, 0 steps)" in captured.out
    assert "loading" in captured.err
