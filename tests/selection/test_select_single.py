"""The single-prompt CPU path gives bitwise the general loop's results, and is taken."""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import unit

import siftlm
import siftlm.selection.greedy as greedy
import siftlm.selection.single as single

FIELDS = ("indices", "variances", "prior_variances", "steps")


def inputs(seed: int, d: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    query = unit(rng.standard_normal(d))
    candidates = unit(query + rng.uniform(0.3, 3, (60, 1)) * rng.standard_normal((60, d)))
    candidates[[7, 30]] = candidates[3]  # exact duplicates
    candidates[40] = unit(candidates[5] + 1e-4 * rng.standard_normal(d))  # a near duplicate
    return query.astype(dtype), candidates.astype(dtype)


def both_paths(monkeypatch, *args, **kwargs):
    fast = siftlm.select(*args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(greedy, "SINGLE_PROMPT_PATH", False)
        general = siftlm.select(*args, **kwargs)
    return fast, general


@pytest.mark.parametrize("method", ["sift", "nn", "nn-f", "us"])
@pytest.mark.parametrize("lambda_", [1e-3, 0.01, 1.0])
@pytest.mark.parametrize("d", [8, 384])
def test_bitwise_equal_to_the_general_loop(monkeypatch, method, lambda_, d) -> None:
    for seed, dtype in ((0, np.float32), (1, np.float64)):
        query, candidates = inputs(seed + d, d, dtype)
        distinct_options = (False, True) if method in ("sift", "us") else (False,)
        for distinct in distinct_options:
            for alpha in (None, 1.0):
                fast, general = both_paths(
                    monkeypatch,
                    query,
                    candidates,
                    50,
                    method=method,
                    lambda_=lambda_,
                    distinct=distinct,
                    alpha=alpha,
                )
                for field in FIELDS:
                    np.testing.assert_array_equal(getattr(fast, field), getattr(general, field))


def test_batch_of_one_and_zero_vectors(monkeypatch) -> None:
    query, candidates = inputs(5, 16)
    candidates[[2, 9]] = 0.0
    for args in ((query[None], candidates[None]), (query[None], candidates), (query, candidates)):
        fast, general = both_paths(monkeypatch, *args, 40)
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(fast, field), getattr(general, field))
    zero = siftlm.select(np.zeros(16, np.float32), candidates, 5)
    np.testing.assert_array_equal(zero.variances, 0.0)


def test_which_calls_take_the_single_prompt_path(monkeypatch) -> None:
    calls = []
    original = single.greedy_single

    def counting(*args, **kwargs):
        calls.append(args[0].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(single, "greedy_single", counting)
    query, candidates = inputs(6, 16)
    for method in siftlm.available_methods():
        siftlm.select(query, candidates, 5, method=method)
    assert calls == ["sift", "nn", "nn-f", "us"]  # random, mmr and hull keep state
    calls.clear()
    siftlm.select(np.stack([query, query]), candidates, 5)  # two prompts: batched loop
    siftlm.select(np.stack([query, query])[None], candidates, 5)  # two targets
    assert calls == []


def test_numpy_duplicate_check_matches_torch() -> None:
    """`first_copies_numpy` (single-prompt path) gives `_first_copies`'s result bitwise,
    including a candidate whose first suspect is only nearly equal, zero and -0.0 rows."""
    import torch

    from siftlm.selection.posterior import _first_copies, first_copies_numpy

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        base = unit(rng.standard_normal((40, 24))).astype(dtype)
        base[5] = unit(base[2] + 1e-7 * rng.standard_normal(24))  # near copy of 2
        base[9] = base[5]  # exact copy of 5, whose first suspect is 2 (only near)
        base[[11, 30]] = base[3]
        base[[12, 13]] = 0.0
        base[14] = -0.0
        gram = torch.from_numpy(base) @ torch.from_numpy(base).T
        expected = _first_copies(torch.from_numpy(base), gram).numpy()
        got = first_copies_numpy(base, gram.numpy())
        np.testing.assert_array_equal(got, expected)
        assert got[30] == 3 and got[13] == 12 and got[14] == 12
