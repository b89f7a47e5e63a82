"""Bad input gets a ValueError that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import siftlm

Q = np.ones((2, 4), dtype=np.float32)
C = np.ones((2, 5, 4), dtype=np.float32)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((Q, np.ones((2, 5, 3)), 2), {}, "dimension mismatch"),
        ((Q, np.ones((3, 5, 4)), 2), {}, "batch size mismatch"),
        ((Q[0], C, 2), {}, "single query"),
        ((np.ones((2, 2, 2, 4)), C, 2), {}, r"queries must be \(B, d\), \(B, m, d\)"),
        ((Q, np.ones(4), 2), {}, r"candidates must be \(B, K, d\)"),
        ((Q, C, 0), {}, "n must be at least 1"),
        ((Q, C, 2.5), {}, "n must be an integer"),
        ((Q, C, True), {}, "n must be an integer"),
        ((Q, np.ones((2, 0, 4)), 1), {}, "K must be at least 1"),
        ((Q, C, 6), {"distinct": True}, "n=6 picks from K=5 candidates, but distinct=True"),
        ((Q, C, 6), {"method": "nn"}, "method 'nn' never repeats"),
        ((Q, C, 2), {"method": "nn-f", "distinct": True}, "repeats its pick by definition"),
        ((Q, C, 2), {"lambda_": 0.0}, "lambda_ must be positive"),
        ((Q, C, 2), {"lambda_": -1.0}, "lambda_ must be positive"),
        ((Q, C, 2), {"lambda_": float("inf")}, "lambda_ must be positive and finite"),
        ((Q, C, 2), {"lambda_": float("nan")}, "lambda_ must be positive and finite"),
        ((Q, C, 2), {"lambda_": "0.1"}, "lambda_ must be a real number"),
        ((Q, C, 2), {"alpha": 0.0}, "alpha must be positive"),
        ((Q, C, 2), {"alpha": -2.0}, "alpha must be positive"),
        ((Q, C, 2), {"seed": 1.5}, "seed must be an integer"),
        ((np.full((2, 4), np.nan), C, 2), {}, "queries contain NaN or infinite"),
        ((Q, np.where(np.eye(5, 4) > 0, np.inf, C), 2), {}, "candidates contain NaN or infinite"),
        ((np.ones((0, 4)), np.ones((0, 5, 4)), 2), {}, "empty batch"),
        ((np.ones((2, 0)), np.ones((2, 5, 0)), 2), {}, "dimension 0"),
        ((Q.astype(np.int64), C, 2), {}, "floating point"),
        ((np.array([["a"] * 4] * 2), C, 2), {}, "real floating-point"),
        ((Q, C, 2), {"method": 3}, "method must be a name"),
    ],
)
def test_bad_input(args, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        siftlm.select(*args, **kwargs)


def test_inputs_on_different_devices() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    with pytest.raises(ValueError, match="different devices"):
        siftlm.select(torch.ones(2, 4, device="cuda"), torch.ones(2, 5, 4), 2)


def test_kept_needs_the_right_prompt() -> None:
    batched = siftlm.select(Q, C, 2)
    with pytest.raises(ValueError, match="prompt's position"):
        batched.kept()
    single = siftlm.select(Q[0], C[0], 2)
    assert list(single.kept()) == list(single.indices)
    with pytest.raises(ValueError, match="only prompt 0"):
        single.kept(1)
