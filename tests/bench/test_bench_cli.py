"""The bench and demo commands are built from BenchConfig's fields."""

from __future__ import annotations

import pytest

from siftlm.bench import BenchConfig
from siftlm.bench.cli import DEMO
from siftlm.bench.config import from_arguments
from siftlm.cli import build_parser, main


def test_every_field_is_an_option_with_its_default():
    args = build_parser().parse_args(["bench"])
    assert from_arguments(args) == BenchConfig()


def test_options_reach_the_config():
    args = build_parser().parse_args(
        [
            "bench",
            "--methods",
            "nn",
            "sift",
            "--n",
            "7",
            "--lambda",
            "0.1",
            "--max-length",
            "none",
            "--docs-per-domain",
            "3",
            "--no-progress",
            "--domains",
            "math",
            "legal",
        ]
    )
    config = from_arguments(args)
    assert config.methods == ("nn", "sift")
    assert (config.n, config.lambda_, config.max_length) == (7, 0.1, None)
    assert config.docs_per_domain == 3 and config.progress is False
    assert config.domains == ("math", "legal")


def test_demo_defaults_are_the_small_configuration():
    config = from_arguments(build_parser().parse_args(["demo"]))
    assert config == BenchConfig(**DEMO)


def test_bad_option_value_is_one_clear_error(capsys):
    assert main(["bench", "--methods", "sift", "siftt", "--out", "/nonexistent/x"]) == 2
    assert "did you mean 'sift'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["report", "/nonexistent/results"]])
def test_missing_results_folder(argv, capsys):
    assert main(argv) == 2
    assert "no results at" in capsys.readouterr().err


def test_query_vector_flags_reach_the_configuration():
    args = build_parser().parse_args(["bench", "--query-vectors", "chunks", "--max-targets", "4"])
    config = from_arguments(args)
    assert (config.query_vectors, config.max_targets, config.target_tokens) == ("chunks", 4, None)
    assert config.ttt_config("sift").max_targets == 4
    assert from_arguments(build_parser().parse_args(["bench"])).query_vectors == "one"
    with pytest.raises(ValueError, match="unknown query_vectors"):
        BenchConfig(query_vectors="all")
    with pytest.raises(ValueError, match="needs query_vectors='chunks'"):
        BenchConfig(max_targets=2)
