"""SIFT by hand: the seed's examples, the posterior, repeats, ties, adaptive stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selection_helpers import posterior_variance, unit

import siftlm
from siftlm.selection import Method, adaptive_steps
from siftlm.selection.posterior import Posterior


def test_first_pick_is_largest_absolute_cosine() -> None:
    rng = np.random.default_rng(0)
    query = unit(rng.standard_normal(16))
    candidates = unit(rng.standard_normal((20, 16)))
    candidates[11] = unit(-query + 0.2 * rng.standard_normal(16))  # most similar, but opposite
    cosines = candidates @ query
    assert cosines[11] < 0 and np.argmax(np.abs(cosines)) == 11
    for lambda_ in (1e-3, 0.01, 1.0, 100.0):
        assert siftlm.select(query, candidates, 1, lambda_=lambda_).indices[0] == 11


@pytest.mark.parametrize("lambda_", [0.01, 0.1, 1.0])
def test_two_point_rule(lambda_: float) -> None:
    """After x1, an x orthogonal to x1 beats repeating x1 iff cos(x*,x)² > λ/(2+λ)·cos(x*,x1)²."""
    c1 = 0.8
    threshold = np.sqrt(lambda_ / (2 + lambda_)) * c1
    for c, expected in ((threshold * 1.01, 1), (threshold * 0.99, 0)):
        query = np.array([c1, c, np.sqrt(1 - c1**2 - c**2)])
        candidates = np.eye(3)[:2]  # x1 = e1, x = e2: orthogonal
        picks = siftlm.select(query, candidates, 2, lambda_=lambda_).indices
        assert picks[0] == 0
        assert picks[1] == expected, f"cos(x*,x)={c:.4f}, threshold {threshold:.4f}"


def test_large_lambda_gives_nearest_neighbour_order() -> None:
    rng = np.random.default_rng(1)
    query = unit(rng.standard_normal(32))
    candidates = unit(query + 1.5 * rng.standard_normal((40, 32)) / np.sqrt(32))
    assert (candidates @ query > 0).all()  # so |cosine| order is inner-product order
    sift = siftlm.select(query, candidates, 15, lambda_=1e7, distinct=True)
    nn = siftlm.select(query, candidates, 15, method="nn")
    np.testing.assert_array_equal(sift.indices, np.argsort(-(candidates @ query))[:15])
    np.testing.assert_array_equal(sift.indices, nn.indices)


def test_small_lambda_avoids_redundancy_and_repeats_when_nothing_else_helps() -> None:
    """A prompt only one candidate is relevant to: with little noise the second look at it
    is worth little, yet more than unrelated candidates, so SIFT repeats it."""
    query = unit(np.array([1.0, 0.2, 0.0, 0.0]))
    candidates = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    picks = siftlm.select(query, candidates, 3, lambda_=0.01).indices
    assert list(picks) == [0, 0, 0]
    distinct = siftlm.select(query, candidates, 3, lambda_=0.01, distinct=True).indices
    assert list(distinct) == [0, 1, 2]
    many = siftlm.select(query, candidates, 7, lambda_=0.01)  # n > K is fine with repeats
    assert many.indices.shape == (7,) and set(many.indices) <= {0, 1, 2}


def test_age_and_children() -> None:
    """The seed's example with hand-made embeddings: axes (age, children, other)."""
    prompt = unit(np.array([1.0, 1.0, 0.0]))  # asks for the age and the number of kids
    candidates = unit(
        np.array(
            [
                [0.0, 0.0, 1.0],  # distractor
                [1.0, 0.1, 0.0],  # "The age of Michael Jordan is 61 years."
                [1.0, 0.0, 0.15],  # "Michael Jordan was born on February 17, 1963."
                [0.0, 1.0, 0.5],  # "Michael Jordan has five children."
                [0.1, -0.2, 1.0],  # distractor
            ]
        )
    )
    nn = siftlm.select(prompt, candidates, 2, method="nn").indices
    sift = siftlm.select(prompt, candidates, 2, method="sift", lambda_=0.01).indices
    assert list(nn) == [1, 2]  # the two redundant age facts
    assert list(sift) == [1, 3]  # one of each
    variance = lambda picks: posterior_variance(prompt, candidates, picks, 0.01)  # noqa: E731
    assert variance(sift) < variance(nn)


@pytest.mark.parametrize("distinct", [False, True])
def test_greedy_step_is_the_exact_argmin_of_posterior_variance(distinct: bool) -> None:
    """Brute force with a direct solve: every pick minimises σ² over all candidates, and the
    reported variances are the posterior variances of the picks so far."""
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((3, 5))
    candidates = rng.standard_normal((3, 12, 5))  # not normalised: used as given
    candidates[:, 4] = candidates[:, 9]
    lambda_ = 0.05
    result = siftlm.select(queries, candidates, 8, lambda_=lambda_, distinct=distinct)
    for b in range(3):
        picks = list(result.indices[b])
        if distinct:
            assert len(set(picks)) == len(picks)
        for t, pick in enumerate(picks):
            allowed = [a for a in range(12) if not (distinct and a in picks[:t])]
            after = {
                a: posterior_variance(queries[b], candidates[b], picks[:t] + [a], lambda_)
                for a in allowed
            }
            assert after[pick] <= min(after.values()) + 1e-10
            np.testing.assert_allclose(result.variances[b, t], after[pick], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(result.prior_variances[b], queries[b] @ queries[b])


@pytest.mark.parametrize("method", siftlm.available_methods())
def test_posterior_variance_never_increases(method: str) -> None:
    rng = np.random.default_rng(3)
    queries = unit(rng.standard_normal((4, 24)))
    candidates = unit(rng.standard_normal((4, 30, 24)))
    result = siftlm.select(queries, candidates, 25, method=method, lambda_=0.01)
    steps = np.concatenate([result.prior_variances[:, None], result.variances], axis=1)
    assert (np.diff(steps, axis=1) <= 1e-12).all()
    assert (result.variances >= 0).all()


def test_duplicates_tie_to_the_lowest_index() -> None:
    rng = np.random.default_rng(4)
    query = unit(rng.standard_normal(8))
    best = unit(query + 0.1 * rng.standard_normal(8))
    candidates = unit(rng.standard_normal((10, 8)))
    candidates[[3, 6, 8]] = best  # three copies of the best candidate
    assert siftlm.select(query, candidates, 1).indices[0] == 3
    distinct = siftlm.select(query, candidates, 3, lambda_=10.0, distinct=True).indices
    assert list(distinct) == [3, 6, 8]  # large λ: the copies are still the most relevant
    assert list(siftlm.select(query, candidates, 3, method="nn").indices) == [3, 6, 8]
    same = np.repeat(candidates[:1], 5, axis=0)
    assert list(siftlm.select(query, same, 3).indices) == [0, 0, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copies_are_bitwise_equal_candidates(dtype) -> None:
    rng = np.random.default_rng(4)
    candidates = rng.standard_normal((2, 7, 5)).astype(dtype)
    candidates[:, 4] = candidates[:, 1]  # exact copy
    candidates[:, 6] = candidates[:, 1]
    candidates[0, 5] = candidates[0, 2] * (1 + 1e-6 if dtype == np.float32 else 1 + 1e-14)
    candidates[1, [0, 3]] = 0.0  # zero vectors are copies of each other
    tensor = torch.from_numpy(candidates)
    posterior = Posterior(torch.from_numpy(candidates[:, 0]), tensor, 0.01, capacity=1)
    assert posterior.copies.tolist() == [[0, 1, 2, 3, 1, 5, 1], [0, 1, 2, 0, 1, 5, 1]]
    shared = Posterior(torch.from_numpy(candidates[:, 0]), tensor[0], 0.01, capacity=1)
    assert shared.copies.tolist() == [[0, 1, 2, 3, 1, 5, 1]] * 2


def test_copies_score_alike_whatever_the_round_off() -> None:
    """A rule that favours a later copy in the last digits still gets the first copy."""

    class Skewed(Method):
        name = "skewed"

        def scores(self, posterior, state):
            k = posterior.num_candidates
            return posterior.prior_cross + 1e-12 * torch.arange(k, dtype=torch.float64)

    query = np.array([1.0, 0.0, 0.0])
    candidates = np.array([[0.0, 1, 0], [1.0, 0.1, 0], [0, 0, 1], [1.0, 0.1, 0]])
    assert siftlm.select(query, candidates, 1, method=Skewed()).indices[0] == 1

    class SkewedNoCopies(Skewed):
        copies_score_alike = False

    assert siftlm.select(query, candidates, 1, method=SkewedNoCopies()).indices[0] == 3


@pytest.mark.parametrize("method", siftlm.available_methods())
def test_zero_vectors_never_give_nan(method: str) -> None:
    rng = np.random.default_rng(5)
    candidates = unit(rng.standard_normal((2, 6, 4)))
    candidates[:, [1, 4]] = 0.0
    queries = unit(rng.standard_normal((2, 4)))
    queries[1] = 0.0  # a prompt with a zero embedding too
    result = siftlm.select(queries, candidates, 6, method=method)
    assert np.isfinite(result.variances).all()
    assert ((result.indices >= 0) & (result.indices < 6)).all()
    np.testing.assert_array_equal(result.variances[1], 0.0)
    all_zero = siftlm.select(queries[0], np.zeros((3, 4)), 2, method=method)
    np.testing.assert_allclose(all_zero.variances, 1.0, rtol=1e-6)


def test_batch_equals_one_prompt_at_a_time_and_shared_candidates() -> None:
    rng = np.random.default_rng(6)
    queries = unit(rng.standard_normal((5, 16)))
    shared = unit(rng.standard_normal((40, 16)))
    per_prompt = np.broadcast_to(shared, (5, 40, 16))
    batched = siftlm.select(queries, per_prompt, 10)
    from_shared = siftlm.select(queries, shared, 10)
    np.testing.assert_array_equal(batched.indices, from_shared.indices)
    np.testing.assert_allclose(
        batched.variances, from_shared.variances, rtol=1e-5
    )  # float32 kernels: bmm vs mm
    for b in range(5):
        single = siftlm.select(queries[b], shared, 10)
        assert single.indices.shape == (10,) and single.steps == 10
        np.testing.assert_array_equal(single.indices, batched.indices[b])
        np.testing.assert_allclose(single.variances, batched.variances[b], rtol=1e-5)
        assert single.prior_variances == pytest.approx(batched.prior_variances[b])


def test_numpy_torch_and_dtypes_agree() -> None:
    rng = np.random.default_rng(7)
    queries = unit(rng.standard_normal((3, 12)))
    candidates = unit(rng.standard_normal((3, 20, 12)))
    reference = siftlm.select(queries, candidates, 8)
    assert reference.indices.dtype == np.int64 and reference.indices.shape == (3, 8)
    assert reference.variances.dtype == np.float64
    for q, c in (
        (queries.astype(np.float64), candidates.astype(np.float64)),
        (torch.from_numpy(queries), torch.from_numpy(candidates)),
        (torch.from_numpy(queries).double(), candidates),
    ):
        result = siftlm.select(q, c, 8)
        assert isinstance(result.indices, np.ndarray)
        np.testing.assert_array_equal(result.indices, reference.indices)


def test_prompts_are_processed_in_chunks_with_identical_results(monkeypatch) -> None:
    import siftlm.selection.api as api

    rng = np.random.default_rng(8)
    queries = unit(rng.standard_normal((7, 10)))
    candidates = unit(rng.standard_normal((7, 15, 10)))
    whole = {m: siftlm.select(queries, candidates, 6, method=m) for m in ("sift", "random")}
    monkeypatch.setattr(api, "GRAM_BYTES", 2 * 8 * 15 * 15)  # two prompts per chunk
    for method, expected in whole.items():
        chunked = siftlm.select(queries, candidates, 6, method=method)
        np.testing.assert_array_equal(chunked.indices, expected.indices)


def test_adaptive_steps_rule() -> None:
    # σ_t = 0.5, 0.3, 0.2 against 1/(α t) = 0.5, 0.25, 0.1667 with α = 2: first exceeded at t = 2.
    variances = torch.tensor([[0.25, 0.09, 0.04], [0.01, 0.0025, 0.0001]], dtype=torch.float64)
    assert adaptive_steps(variances, 2.0).tolist() == [2, 3]
    assert adaptive_steps(variances, 1e9).tolist() == [1, 1]
    assert adaptive_steps(variances, 1e-9).tolist() == [3, 3]


def test_adaptive_sift_cuts_and_pads() -> None:
    rng = np.random.default_rng(9)
    queries = unit(rng.standard_normal((6, 16)))
    candidates = unit(
        queries[:, None] + rng.standard_normal((6, 30, 16)) * np.linspace(0.2, 2, 6)[:, None, None]
    )
    full = siftlm.select(queries, candidates, 20)
    alpha = 0.55
    adaptive = siftlm.select(queries, candidates, 20, alpha=alpha)
    sigma = np.sqrt(full.variances)
    for b in range(6):
        exceeded = np.flatnonzero(sigma[b] > 1 / (alpha * np.arange(1, 21)))
        expected = exceeded[0] + 1 if exceeded.size else 20
        steps = int(adaptive.steps[b])
        assert steps == expected
        np.testing.assert_array_equal(adaptive.kept(b), full.indices[b, :steps])
        assert (adaptive.indices[b, steps:] == -1).all()
        assert np.isnan(adaptive.variances[b, steps:]).all()
    assert len(set(adaptive.steps.tolist())) > 1, (
        "the example should stop prompts at different steps"
    )
    assert (siftlm.select(queries, candidates, 5, alpha=1e9).steps == 1).all()
    assert (siftlm.select(queries, candidates, 5).steps == 5).all()
