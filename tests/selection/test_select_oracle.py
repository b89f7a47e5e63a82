"""SIFT's picks equal those of the authors' reference implementation, activeft 0.1.1.

Grid: λ from 1e-3 to 10, d from 8 to 768, candidate sets of random unit vectors, exact
duplicates, near duplicates and a mix; prompts unrelated to or close to a candidate.
K = 32, n = 16 keeps each case around 0.1 s and makes repeats happen.

activeft computes in float32 and shuffles the candidates before its argmax, so:
- picks are compared through `first_copies` (which of two identical rows it takes is random);
- where two candidates leave posterior variances closer than float32 can tell apart, it may
  take either (so may siftlm, whose kernel values are float32 for float32 inputs too). The
  first divergence must be such a tie, checked with a float64 solve, after which the two
  greedy paths legitimately differ. Such ties are rare (1 in 180 cases while writing
  these tests).
"""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import activeft_sift, first_copies, posterior_variance, unit

import siftlm

pytest.importorskip("activeft")
pytest.importorskip("faiss")

K, N = 32, 16


def float32_tolerance(lambda_: float) -> float:
    """How far two float32 computations of posterior variances (of order 1) may differ:
    activeft's and siftlm's kernels are float32 (~1e-7 round-off), and the error grows
    with the condition number of K_XX + λI, up to ~1/λ."""
    return max(1e-6, 5e-8 / lambda_)


def candidate_set(rng: np.random.Generator, d: int, kind: str) -> np.ndarray:
    if kind == "random":
        return unit(rng.standard_normal((K, d)))
    base = unit(rng.standard_normal((K // 4, d)))
    copies = base[rng.integers(0, len(base), K)]
    if kind == "exact":
        return copies
    noise = rng.standard_normal((K, d)) / np.sqrt(d)
    if kind == "near":
        return unit(copies + 0.05 * noise)
    mixed = copies.copy()  # "mixed": half exact copies, half perturbed copies
    perturbed = rng.random(K) < 0.5
    mixed[perturbed] = unit(copies[perturbed] + 0.1 * noise[perturbed])
    return mixed


def cases(lambda_: float, d: int):
    rng = np.random.default_rng([int(lambda_ * 1000), d])
    for kind, prompt in (
        ("random", "unrelated"),
        ("exact", "close"),
        ("near", "close"),
        ("mixed", "unrelated"),
    ):
        candidates = candidate_set(rng, d, kind)
        if prompt == "close":
            query = unit(candidates[0] + 0.3 * rng.standard_normal(d) / np.sqrt(d))
        else:
            query = unit(rng.standard_normal(d))
        yield kind, prompt, query, candidates


@pytest.mark.parametrize("d", [8, 64, 768])
@pytest.mark.parametrize("lambda_", [1e-3, 1e-2, 1e-1, 1.0, 10.0])
def test_sift_matches_activeft(lambda_: float, d: int) -> None:
    full_agreements = 0
    tolerance = float32_tolerance(lambda_)
    for kind, prompt, query, candidates in cases(lambda_, d):
        label = f"{kind} candidates, {prompt} prompt"
        ours = siftlm.select(query, candidates, N, lambda_=lambda_)
        ref_indices, ref_variances = activeft_sift(query, candidates, N, lambda_)
        copies = first_copies(candidates)
        mine, theirs = copies[ours.indices], copies[ref_indices]
        diverged = np.flatnonzero(mine != theirs)
        if diverged.size == 0:
            full_agreements += 1
            np.testing.assert_allclose(ours.variances, ref_variances, rtol=0, atol=tolerance)
            continue
        t = diverged[0]
        np.testing.assert_allclose(
            ours.variances[:t], ref_variances[:t], rtol=0, atol=tolerance, err_msg=label
        )
        mine_after = posterior_variance(query, candidates, mine[: t + 1], lambda_)
        theirs_after = posterior_variance(query, candidates, theirs[: t + 1], lambda_)
        assert abs(theirs_after - mine_after) < tolerance, (
            f"{label}: picks differ at step {t} ({mine[t]} vs activeft's {theirs[t]}) "
            f"by {theirs_after - mine_after:.2e} in posterior variance, more than a float32 tie"
        )
    assert full_agreements >= 3, f"only {full_agreements} of 4 cases agree at every step"


def test_batched_selection_matches_activeft_per_prompt() -> None:
    """A batch of prompts, each with its own candidates, in one call."""
    rng = np.random.default_rng(7)
    batch, d, lambda_ = 6, 48, 0.01
    candidates = unit(rng.standard_normal((batch, K, d)))
    candidates[:, 5] = candidates[:, 2]  # an exact duplicate in every set
    queries = unit(candidates[:, 0] + 0.5 * rng.standard_normal((batch, d)) / np.sqrt(d))
    ours = siftlm.select(queries, candidates, N, lambda_=lambda_)
    for b in range(batch):
        ref_indices, ref_variances = activeft_sift(queries[b], candidates[b], N, lambda_)
        copies = first_copies(candidates[b])
        np.testing.assert_array_equal(copies[ours.indices[b]], copies[ref_indices])
        tolerance = float32_tolerance(lambda_)
        np.testing.assert_allclose(ours.variances[b], ref_variances, rtol=0, atol=tolerance)
