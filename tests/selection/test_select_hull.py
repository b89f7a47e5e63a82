"""hull (HullFT): hand-made cases with known answers, rounding, order, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import posterior_variance, unit

import siftlm
from siftlm.selection import HullFT
from siftlm.selection.hull import frank_wolfe, pick_order, round_counts


def basis_candidates(d: int = 8) -> np.ndarray:
    """The d unit vectors e_0 .. e_{d-1}, plus two off-axis distractors."""
    extra = unit(np.array([[1.0, 1.0, 1.0] + [0.0] * (d - 3), [0.0] * (d - 2) + [1.0, -1.0]]))
    return np.concatenate([np.eye(d), extra]).astype(np.float64)


def counts_of(indices: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(indices, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("n", [2, 10, 50])
def test_midpoint_of_two_candidates_splits_evenly(n: int) -> None:
    candidates = basis_candidates()
    query = 0.5 * (candidates[2] + candidates[5])
    picks = siftlm.select(query, candidates, n, method="hull").indices
    assert counts_of(picks) == {2: n // 2, 5: n // 2}


def test_query_equal_to_a_candidate_takes_it_n_times() -> None:
    rng = np.random.default_rng(0)
    candidates = unit(rng.standard_normal((30, 16)))
    for target in (0, 17, 29):
        picks = siftlm.select(candidates[target], candidates, 12, method="hull").indices
        assert picks.tolist() == [target] * 12


def test_known_convex_combination_and_pick_order() -> None:
    candidates = basis_candidates()
    query = 0.5 * candidates[4] + 0.25 * candidates[1] + 0.25 * candidates[6]
    picks = siftlm.select(query, candidates, 8, method="hull").indices
    # by decreasing count; equal counts (1 and 6, same cosine) by the lower index
    assert picks.tolist() == [4] * 4 + [1] * 2 + [6] * 2


def test_equal_counts_are_ordered_by_cosine() -> None:
    candidates = basis_candidates()
    candidates[6] *= 2.0  # 2·e_6
    query = 0.5 * candidates[1] + 0.5 * candidates[6]  # cos with 2·e_6 is twice that with e_1
    picks = siftlm.select(query, candidates, 6, method="hull").indices
    assert picks.tolist() == [6] * 3 + [1] * 3
    order = pick_order(np.array([1, 6]), np.array([3, 3]), np.zeros(7))
    assert order.tolist() == [1, 1, 1, 6, 6, 6]  # equal cosines: the lower index first
    order = pick_order(np.array([1, 6]), np.array([2, 4]), np.array([0, 0.9, 0, 0, 0, 0, 0.1]))
    assert order.tolist() == [6, 6, 6, 6, 1, 1]  # counts before cosines


def test_odd_remainder_goes_to_the_closer_candidate() -> None:
    candidates = basis_candidates()
    query = 0.6 * candidates[0] + 0.4 * candidates[3]
    picks = siftlm.select(query, candidates, 5, method="hull").indices
    assert counts_of(picks) == {0: 3, 3: 2}
    picks = siftlm.select(query, candidates, 3, method="hull").indices  # 1.8 and 1.2
    assert counts_of(picks) == {0: 2, 3: 1}


def test_frank_wolfe_support_is_bounded_by_iterations() -> None:
    rng = np.random.default_rng(1)
    candidates = rng.standard_normal((40, 20))
    query = rng.standard_normal(20)
    gram, cross = candidates @ candidates.T, candidates @ query
    objective = []
    for iterations in (1, 2, 5, 10, 30):
        weights = frank_wolfe(gram, cross, float(query @ query), iterations)
        assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
        assert np.count_nonzero(weights) <= iterations
        objective.append(float(np.sum((query - weights @ candidates) ** 2)))
    assert all(b <= a + 1e-12 for a, b in zip(objective, objective[1:], strict=False))
    picks = siftlm.select(query, candidates, 20, method=HullFT(iterations=3)).indices
    assert len(set(picks.tolist())) <= 3


def reconstruction_error(query, candidates, support, counts, n) -> float:
    mean = (counts[:, None] * candidates[support]).sum(0) / n
    return float(np.sum((query - mean) ** 2))


def test_rounding_sums_to_n_and_no_single_swap_improves_it() -> None:
    rng = np.random.default_rng(2)
    for trial in range(20):
        candidates = rng.standard_normal((15, 6))
        query = rng.standard_normal(6)
        n = int(rng.integers(1, 12))
        gram, cross = candidates @ candidates.T, candidates @ query
        weights = frank_wolfe(gram, cross, float(query @ query), 10)
        support, counts = round_counts(weights, gram, cross, n)
        assert counts.sum() == n and (counts > 0).all()
        assert set(support.tolist()) <= set(np.flatnonzero(weights > 0).tolist())
        error = reconstruction_error(query, candidates, support, counts, n)
        full_support = np.flatnonzero(weights > 0)
        full_counts = np.zeros(len(full_support), np.int64)
        full_counts[np.searchsorted(full_support, support)] = counts
        for i in np.flatnonzero(full_counts):
            for j in range(len(full_support)):
                if i == j:
                    continue
                moved = full_counts.copy()
                moved[i] -= 1
                moved[j] += 1
                other = reconstruction_error(query, candidates, full_support, moved, n)
                assert other >= error - 1e-9, f"trial {trial}: moving {i}->{j} improves"


def test_variances_are_the_sift_posterior_of_the_picks() -> None:
    rng = np.random.default_rng(3)
    candidates = rng.standard_normal((25, 10))
    query = rng.standard_normal(10)
    result = siftlm.select(query, candidates, 9, method="hull", lambda_=0.1)
    for t in range(9):
        expected = posterior_variance(query, candidates, result.indices[: t + 1], 0.1)
        np.testing.assert_allclose(result.variances[t], expected, rtol=1e-9)


def test_deterministic_and_batch_independent() -> None:
    rng = np.random.default_rng(4)
    queries = unit(rng.standard_normal((4, 16)))
    candidates = unit(rng.standard_normal((4, 50, 16)))
    candidates[:, 10] = candidates[:, 3]  # exact duplicates: the first copy is used
    batched = siftlm.select(queries, candidates, 20, method="hull")
    again = siftlm.select(queries, candidates, 20, method="hull", seed=99)
    np.testing.assert_array_equal(batched.indices, again.indices)
    np.testing.assert_array_equal(batched.variances, again.variances)
    assert not (batched.indices == 10).any()
    for b in range(4):
        alone = siftlm.select(queries[b], candidates[b], 20, method="hull")
        np.testing.assert_array_equal(alone.indices, batched.indices[b])


def test_bad_input() -> None:
    candidates = basis_candidates()
    with pytest.raises(ValueError, match="repeats its pick by definition"):
        siftlm.select(candidates[0], candidates, 2, method="hull", distinct=True)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="iterations must be a positive integer"):
            HullFT(iterations=bad)
    with pytest.raises(ValueError, match="Did you mean 'hull'"):
        siftlm.select(candidates[0], candidates, 2, method="hul")
