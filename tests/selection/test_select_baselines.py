"""The baselines: nn, nn-f, us, random, mmr; the registry by name."""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import unit

import siftlm
from siftlm.selection import MMR, Method, register


@pytest.fixture
def problem():
    rng = np.random.default_rng(10)
    queries = unit(rng.standard_normal((3, 12)))
    candidates = unit(rng.standard_normal((3, 25, 12)))
    candidates[:, 7] = unit(-queries + 0.1)  # strongly anti-aligned: large |cos|, negative
    return queries, candidates


def test_available_methods() -> None:
    assert siftlm.available_methods() == ("sift", "nn", "nn-f", "us", "random", "mmr", "hull")


def test_nn_is_inner_product_order_each_once(problem) -> None:
    queries, candidates = problem
    result = siftlm.select(queries, candidates, 25, method="nn")
    for b in range(3):
        expected = np.argsort(-(candidates[b] @ queries[b]), kind="stable")
        np.testing.assert_array_equal(result.indices[b], expected)
        assert result.indices[b, -1] == 7  # signed: the anti-aligned one comes last


def test_nn_f_repeats_the_nearest(problem) -> None:
    queries, candidates = problem
    nn = siftlm.select(queries, candidates, 1, method="nn").indices
    result = siftlm.select(queries, candidates, 9, method="nn-f")
    np.testing.assert_array_equal(result.indices, np.repeat(nn, 9, axis=1))
    assert (np.diff(result.variances, axis=1) < 0).all()  # each repeat still helps a little


def test_us_picks_the_largest_own_variance_and_spreads_out() -> None:
    rng = np.random.default_rng(11)
    candidates = rng.standard_normal((20, 6))
    norms = np.linalg.norm(candidates, axis=1)
    biggest = int(np.argmax(norms))
    candidates = np.concatenate([candidates, candidates[biggest : biggest + 1]])  # a copy, #20
    query = rng.standard_normal(6)
    picks = siftlm.select(query, candidates, 6, method="us", lambda_=0.01).indices
    assert picks[0] == biggest
    assert 20 not in picks[:6]  # the copy of a picked point has almost no variance left
    # blind to the prompt
    other = siftlm.select(-3 * query, candidates, 6, method="us", lambda_=0.01).indices
    np.testing.assert_array_equal(picks, other)


def test_random_is_seeded_distinct_and_per_prompt(problem) -> None:
    queries, candidates = problem
    a = siftlm.select(queries, candidates, 25, method="random", seed=1)
    b = siftlm.select(queries, candidates, 25, method="random", seed=1)
    c = siftlm.select(queries, candidates, 25, method="random", seed=2)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    for row in a.indices:
        assert sorted(row) == list(range(25))  # a permutation: each once
    assert not np.array_equal(a.indices[0], a.indices[1])


def test_mmr_first_relevance_then_diversity() -> None:
    rng = np.random.default_rng(12)
    query = unit(rng.standard_normal(10))
    candidates = unit(rng.standard_normal((15, 10)))
    candidates[3] = unit(query + 0.05 * rng.standard_normal(10))
    candidates[9] = 2.0 * candidates[3]  # same direction, different norm: cosine 1 with #3
    picks = siftlm.select(query, candidates, 4, method="mmr").indices
    assert picks[0] == 3 and 9 not in picks[:4]
    as_nn = siftlm.select(query, candidates, 15, method=MMR(relevance=1.0)).indices
    cosines = candidates @ query / np.linalg.norm(candidates, axis=1)
    assert list(as_nn[:2]) == [3, 9]  # cosine ties (up to round-off) go to the lowest index
    assert (np.diff(cosines[as_nn]) <= 1e-9).all()
    with pytest.raises(ValueError, match="relevance"):
        MMR(relevance=1.5)


def test_unknown_method_lists_known_and_suggests() -> None:
    with pytest.raises(ValueError, match=r"known methods: sift, nn, nn-f.*Did you mean 'sift'"):
        siftlm.select(np.ones(3), np.eye(3), 1, method="sfit")
    with pytest.raises(ValueError, match="Did you mean 'nn-f'"):
        siftlm.select(np.ones(3), np.eye(3), 1, method="nnf")
    assert siftlm.select(np.ones(3), np.eye(3), 1, method="NN_F").method == "nn-f"


def test_a_new_method_is_a_scoring_rule() -> None:
    @register
    class Farthest(Method):
        name = "test-farthest"
        repeats = False

        def scores(self, posterior, state):
            return -posterior.prior_cross

    try:
        result = siftlm.select(
            np.array([1.0, 0.0]), np.array([[1.0, 0], [0, 1], [-1, 0]]), 3, method="test-farthest"
        )
        assert list(result.indices) == [2, 1, 0]
        with pytest.raises(ValueError, match="already registered"):
            register(Farthest)
    finally:
        from siftlm.selection import registry

        registry._REGISTRY.pop("test-farthest")
