"""Multi-vector prompts: queries (B, m, d), SIFT minimising the sum of the targets' variances.

The oracle is activeft 0.1.1's VTL with an m × d target (`Retriever.search` with an
(m, d) query and `mean_pooling=False`), under the same tie rule as the single-target
oracle test (test_select_oracle.py): picks compared through `first_copies`, and a first
divergence accepted only at a float32 tie, checked with a float64 solve.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from selection_helpers import first_copies, posterior_variance, unit

import siftlm
import siftlm.selection.api as api

K, N = 32, 16


def total_variance(targets, candidates, picks, lambda_) -> float:
    """Σ_j σ²_X(x*_j) by direct float64 solves."""
    return sum(posterior_variance(target, candidates, picks, lambda_) for target in targets)


def activeft_vtl(targets: np.ndarray, candidates: np.ndarray, n: int, lambda_: float):
    """activeft's picks and Σ_j posterior variances for an (m, d) target."""
    import faiss
    from activeft.sift import Retriever

    torch.manual_seed(0)
    index = faiss.IndexFlatIP(candidates.shape[1])
    index.add(np.ascontiguousarray(candidates, dtype=np.float32))
    retriever = Retriever(
        index, llambda=lambda_, also_query_opposite=False, device=torch.device("cpu")
    )
    with warnings.catch_warnings():  # activeft's numpy-2 DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        values, indices, _, _ = retriever.search(np.asarray(targets, np.float32), N=n, K=None)
    return np.asarray(indices), -np.asarray(values, dtype=np.float64)


def multi_cases(lambda_: float, d: int):
    rng = np.random.default_rng([int(lambda_ * 1000), d, 7])
    for kind in ("random", "exact", "near", "mixed"):
        m = int(rng.integers(2, 6))
        if kind == "random":
            candidates = unit(rng.standard_normal((K, d)))
        else:
            base = unit(rng.standard_normal((K // 4, d)))
            candidates = base[rng.integers(0, len(base), K)]
            noise = rng.standard_normal((K, d)) / np.sqrt(d)
            scale = {"exact": 0.0, "near": 0.05, "mixed": 0.1 * (rng.random((K, 1)) < 0.5)}[kind]
            if kind != "exact":
                candidates = unit(candidates + scale * noise)
        # targets near some candidates (a long prompt's chunks resemble parts of memory)
        near = candidates[rng.integers(0, K, m)]
        targets = unit(near + 0.5 * rng.standard_normal((m, d)) / np.sqrt(d))
        yield kind, targets, candidates


def float32_tolerance(lambda_: float, m: int) -> float:
    return m * max(1e-6, 5e-8 / lambda_)


@pytest.mark.parametrize("d", [8, 64, 384])
@pytest.mark.parametrize("lambda_", [1e-3, 1e-2, 1.0])
def test_multi_vector_sift_matches_activeft_vtl(lambda_: float, d: int) -> None:
    pytest.importorskip("activeft")
    pytest.importorskip("faiss")
    full_agreements = 0
    for kind, targets, candidates in multi_cases(lambda_, d):
        m = len(targets)
        tolerance = float32_tolerance(lambda_, m)
        ours = siftlm.select(targets[None], candidates, N, lambda_=lambda_)
        ref_indices, ref_variances = activeft_vtl(targets, candidates, N, lambda_)
        copies = first_copies(candidates)
        mine, theirs = copies[ours.indices[0]], copies[ref_indices]
        diverged = np.flatnonzero(mine != theirs)
        label = f"{kind} candidates, m={m}"
        t = diverged[0] if diverged.size else N
        np.testing.assert_allclose(
            ours.variances[0, :t], ref_variances[:t], rtol=0, atol=tolerance, err_msg=label
        )
        if diverged.size == 0:
            full_agreements += 1
            continue
        mine_after = total_variance(targets, candidates, mine[: t + 1], lambda_)
        theirs_after = total_variance(targets, candidates, theirs[: t + 1], lambda_)
        assert abs(theirs_after - mine_after) < tolerance, (
            f"{label}: picks differ at step {t} ({mine[t]} vs activeft's {theirs[t]}) "
            f"by {theirs_after - mine_after:.2e} in summed posterior variance"
        )
    assert full_agreements >= 3, f"only {full_agreements} of 4 cases agree at every step"


def test_batched_multi_vector_matches_activeft_per_prompt() -> None:
    """Prompts with different numbers of targets in one call, through target_mask."""
    pytest.importorskip("activeft")
    pytest.importorskip("faiss")
    rng = np.random.default_rng(11)
    batch, m, d, lambda_ = 4, 5, 48, 0.01
    candidates = unit(rng.standard_normal((batch, K, d)))
    candidates[:, 9] = candidates[:, 4]  # an exact duplicate in every set
    targets = unit(candidates[:, :m] + 0.7 * rng.standard_normal((batch, m, d)) / np.sqrt(d))
    counts = [5, 1, 3, 2]
    mask = np.arange(m)[None, :] < np.array(counts)[:, None]
    padded = np.where(mask[..., None], targets, np.nan)  # absent targets may hold anything
    ours = siftlm.select(padded, candidates, N, lambda_=lambda_, target_mask=mask)
    for b, count in enumerate(counts):
        ref_indices, ref_variances = activeft_vtl(targets[b, :count], candidates[b], N, lambda_)
        copies = first_copies(candidates[b])
        np.testing.assert_array_equal(copies[ours.indices[b]], copies[ref_indices])
        np.testing.assert_allclose(
            ours.variances[b], ref_variances, rtol=0, atol=float32_tolerance(lambda_, count)
        )
        assert ours.prior_variances[b] == pytest.approx(count, rel=1e-6)  # unit targets


@pytest.mark.parametrize("distinct", [False, True])
def test_greedy_step_is_the_exact_argmin_of_the_summed_variance(distinct: bool) -> None:
    rng = np.random.default_rng(12)
    targets = rng.standard_normal((2, 3, 6))
    candidates = rng.standard_normal((2, 12, 6))
    lambda_ = 0.05
    result = siftlm.select(targets, candidates, 8, lambda_=lambda_, distinct=distinct)
    for b in range(2):
        picks = result.indices[b].tolist()
        for t, pick in enumerate(picks):
            allowed = [a for a in range(12) if not (distinct and a in picks[:t])]
            after = {
                a: total_variance(targets[b], candidates[b], picks[:t] + [a], lambda_)
                for a in allowed
            }
            assert after[pick] <= min(after.values()) + 1e-10
            np.testing.assert_allclose(result.variances[b, t], after[pick], rtol=1e-10)
        np.testing.assert_allclose(result.prior_variances[b], (targets[b] ** 2).sum())


def test_one_target_is_bitwise_the_single_vector_query() -> None:
    rng = np.random.default_rng(13)
    queries = unit(rng.standard_normal((5, 16)))
    candidates = unit(rng.standard_normal((5, 40, 16)))
    candidates[:, 3] = candidates[:, 1]
    for method in siftlm.available_methods():
        for cands in (candidates, candidates[0]):
            flat = siftlm.select(queries, cands, 12, method=method)
            multi = siftlm.select(queries[:, None], cands, 12, method=method)
            for field in ("indices", "variances", "prior_variances", "steps"):
                np.testing.assert_array_equal(getattr(multi, field), getattr(flat, field))


def test_masked_targets_are_ignored() -> None:
    rng = np.random.default_rng(14)
    targets = unit(rng.standard_normal((3, 4, 16)))
    candidates = unit(rng.standard_normal((3, 30, 16)))
    mask = np.array([[True, True, False, False], [True, False, True, True], [True] * 4])
    garbage = np.where(mask[..., None], targets, 1e6)
    for method in ("sift", "nn", "mmr", "hull"):
        masked = siftlm.select(garbage, candidates, 10, method=method, target_mask=mask)
        for b in range(3):
            kept = targets[b][mask[b]][None]
            alone = siftlm.select(kept, candidates[b : b + 1], 10, method=method)
            np.testing.assert_array_equal(masked.indices[b], alone.indices[0])
            np.testing.assert_allclose(masked.variances[b], alone.variances[0], rtol=1e-6)


def test_relevance_methods_use_the_mean_target() -> None:
    rng = np.random.default_rng(15)
    targets = unit(rng.standard_normal((2, 3, 16)))
    candidates = unit(rng.standard_normal((2, 30, 16)))
    for method in ("nn", "mmr", "hull"):
        multi = siftlm.select(targets, candidates, 6, method=method)
        mean = siftlm.select(targets.mean(1), candidates, 6, method=method)
        np.testing.assert_array_equal(multi.indices, mean.indices)


def test_shared_candidates_and_chunks_agree(monkeypatch) -> None:
    rng = np.random.default_rng(16)
    targets = unit(rng.standard_normal((5, 3, 12)))
    shared = unit(rng.standard_normal((20, 12)))
    mask = rng.random((5, 3)) < 0.7
    mask[:, 0] = True
    whole = siftlm.select(targets, shared, 8, target_mask=mask)
    per_prompt = siftlm.select(targets, np.broadcast_to(shared, (5, 20, 12)), 8, target_mask=mask)
    np.testing.assert_array_equal(whole.indices, per_prompt.indices)
    np.testing.assert_allclose(whole.variances, per_prompt.variances, rtol=1e-5)
    monkeypatch.setattr(api, "GRAM_BYTES", 2 * 8 * 20 * 20)  # two prompts per chunk
    chunked = siftlm.select(targets, shared, 8, target_mask=mask)
    np.testing.assert_array_equal(chunked.indices, whole.indices)
    np.testing.assert_array_equal(chunked.variances, whole.variances)


def test_adaptive_stopping_reads_the_mean_variance_per_target() -> None:
    rng = np.random.default_rng(17)
    targets = unit(rng.standard_normal((4, 3, 16)))
    candidates = unit(targets[:, :1] + rng.standard_normal((4, 30, 16)) * 0.5)
    mask = np.array([[True, True, True], [True, False, False], [True, True, False], [True] * 3])
    full = siftlm.select(targets, candidates, 20, target_mask=mask)
    alpha = 0.55
    adaptive = siftlm.select(targets, candidates, 20, alpha=alpha, target_mask=mask)
    sigma = np.sqrt(full.variances / mask.sum(1, keepdims=True))
    for b in range(4):
        exceeded = np.flatnonzero(sigma[b] > 1 / (alpha * np.arange(1, 21)))
        expected = exceeded[0] + 1 if exceeded.size else 20
        assert int(adaptive.steps[b]) == expected
        np.testing.assert_array_equal(adaptive.kept(b), full.indices[b, :expected])


@pytest.mark.parametrize(
    ("queries", "candidates", "kwargs", "message"),
    [
        (
            np.ones((2, 4)),
            np.ones((2, 5, 4)),
            {"target_mask": np.ones((2, 1), bool)},
            "needs multi",
        ),
        (np.ones((2, 3, 4)), np.ones((2, 5, 4)), {"target_mask": np.ones((2, 2), bool)}, "shape"),
        (np.ones((2, 3, 4)), np.ones((2, 5, 4)), {"target_mask": np.ones((2, 3))}, "boolean"),
        (
            np.ones((2, 3, 4)),
            np.ones((2, 5, 4)),
            {"target_mask": np.array([[True] * 3, [False] * 3])},
            r"prompts \[1\] without any target",
        ),
        (np.ones((2, 0, 4)), np.ones((2, 5, 4)), {}, "m >= 1"),
        (np.ones((2, 3, 4)), np.ones((3, 5, 4)), {}, "batch size mismatch"),
        (np.ones((2, 3, 4)), np.ones((2, 5, 3)), {}, "dimension mismatch"),
        (np.full((2, 3, 4), np.nan), np.ones((2, 5, 4)), {}, "queries contain NaN"),
    ],
)
def test_bad_multi_vector_input(queries, candidates, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        siftlm.select(queries, candidates, 2, **kwargs)
