"""The single-prompt CPU path: the same greedy loop for one prompt, without torch's per-call cost.

One prompt's n steps are sequential, and each is ~30 small torch operations on (1, K)
tensors, so the general loop is bound by torch's per-operation overhead (a few µs each).
Here the loop runs on numpy views of preallocated float64 buffers and on Python floats
for the per-step scalars; the operations whose rounding torch and numpy may do differently
stay torch calls on those buffers, three per step:

- the (1, t) × (t, K) product c_{0..t-1}(pick)ᵀ [c_0; ..; c_{t-1}] (`torch.bmm`, MKL),
- the square root sqrt(k_t(pick, pick) + λ) (torch's float64 `sqrt` is MKL's, which is not
  always correctly rounded, so neither `math.sqrt` nor `np.sqrt` may replace it),
- both rank-one updates in one call (`addcmul_`, fused multiply-adds, which numpy lacks).

Everything else is an elementwise IEEE operation (+, −, ×, ÷, comparisons) that rounds
the same in torch, numpy and Python. Picks and variances are therefore bitwise those of
the general loop (`tests/selection/test_select_single.py` checks it).

Per step, besides the three torch calls: the gains k_t(x*, a)² / (k_t(a, a) + λ) (three
numpy ufuncs into preallocated buffers), their argmax, the gather of c_{0..t-1}(pick),
one subtraction and one division making c_t in its row of the factor, and one fill; no
temporaries are allocated. The factor rows sit in one flat buffer right after a (K,)
row x₀ holding c_t(x*), so that the (2, K) coefficient pair (c_t(x*), c_t) of the fused
rank-one update is a strided view of [x₀, row t] and c_t is never copied.

Used for a batch of one single-target prompt on the CPU with a method whose scores only
read the posterior (`Method.posterior_only`: sift, nn, nn-f, us).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from siftlm.selection.posterior import prior_kernel, prior_prompt
from siftlm.selection.registry import Method


def applies(method: Method, queries: torch.Tensor) -> bool:
    """Whether `greedy_single` can run this method on these (validated) queries."""
    return (
        method.posterior_only
        and queries.dim() == 2
        and queries.shape[0] == 1
        and queries.device.type == "cpu"
    )


class _Scratch:
    """Torch buffers for n steps over K candidates and their per-step views, built once per
    thread and shape and reused by later calls (building the views costs as much as a call).

    Every buffer is written before it is read within a call, so reuse changes nothing.
    """

    def __init__(self, n: int, num_candidates: int) -> None:
        wide, k = torch.float64, num_candidates
        self.shape = (n, k)
        # [x₀ | c_0 | c_1 | ... | c_{n-1}]: x₀ holds c_t(x*) in every entry during step t.
        flat = torch.empty((n + 1) * k, dtype=wide)
        self.factor = flat[k:].view(1, n, k)  # rows c_0, c_1, ...
        self.rows = self.factor.numpy()[0]
        self.cross_at_pick = flat[:k].numpy()
        self.at_pick = torch.empty(1, 1, n, dtype=wide)  # c_0..c_{t-1} at the pick
        self.at_pick_values = self.at_pick.numpy()[0, 0]
        self.product = torch.empty(1, 1, k, dtype=wide)
        self.product_values = self.product.numpy()[0, 0]
        self.scale = torch.empty(1, 1, dtype=wide)
        self.scale_value = self.scale.numpy()[0]  # (1,), read after sqrt_
        # k_t(x*, ·) and k_t(·, ·) in one (2, K) buffer, so that one `addcmul_` with the
        # coefficients (c_t(x*), c_t), a view of [x₀, row t], does both rank-one updates.
        self.state = torch.empty(2, k, dtype=wide)
        self.denominator = np.empty(k)
        self.gain = np.empty(k)
        self.gain_row = self.gain[None]  # (1, K)
        self.at_pick_views = [self.at_pick[:, :, :t] for t in range(n)]
        self.factor_views = [self.factor[:, :t] for t in range(n)]
        self.row_views = [self.factor[0, t] for t in range(n)]
        self.coefficient_views = [flat.as_strided((2, k), ((t + 1) * k, 1)) for t in range(n)]


_local = threading.local()


def _scratch(n: int, num_candidates: int) -> _Scratch:
    scratch = getattr(_local, "scratch", None)
    if scratch is None or scratch.shape != (n, num_candidates):
        with torch.inference_mode(False):  # normal tensors: usable in and out of that mode
            scratch = _local.scratch = _Scratch(n, num_candidates)
    return scratch


class SinglePosterior:
    """The `Posterior` of one single-target prompt on the CPU, as numpy arrays updated in
    place; its prior values come from the same functions (`prior_kernel`, `prior_prompt`).

    Attributes as in `Posterior`, as (1, K) / (1,) float64 numpy arrays (`variances` is
    current after each `observe`; `prompt_norms` is computed when read); `gram` is the
    (K, K) Gram matrix in the inputs' precision (rows are widened as they are read).
    """

    def __init__(
        self, queries: torch.Tensor, candidates: torch.Tensor, lambda_: float, capacity: int
    ) -> None:
        """queries (1, d) and candidates (K, d) or (1, K, d), validated, on the CPU."""
        candidates = candidates.view(candidates.shape[-2:])
        gram, copies = prior_kernel(candidates)
        prior_cross, prior_variances = prior_prompt(queries, candidates)
        self.lambda_ = float(lambda_)
        self.gram = gram.numpy()
        self.copies = copies.numpy()[None]
        self.prior_cross = prior_cross.numpy().astype(np.float64)  # exact widening
        self.prior_candidate_variances = np.diagonal(self.gram).astype(np.float64)[None]
        self.prior_variances = prior_variances.to(torch.float64)
        self.num_candidates = self.gram.shape[0]
        scratch = self._scratch = _scratch(capacity, self.num_candidates)
        self.cross, self.candidate_variances = scratch.state.numpy()[:, None]  # (1, K) each
        self.cross[:] = self.prior_cross
        self.candidate_variances[:] = self.prior_candidate_variances
        self._cross, self._candidate_variances = scratch.state.numpy()  # (K,) views
        self._variance = self.prior_variances.item()  # σ²_t(x*), a Python float
        self._steps = 0

    @property
    def prompt_norms(self) -> np.ndarray:
        """(1,) ‖x*‖ (torch's square root, as `Posterior.prompt_norms`)."""
        return self.prior_variances.sqrt().numpy()

    @property
    def variances(self) -> np.ndarray:
        """(1,) posterior σ²_t(x*)."""
        return np.array([self._variance])

    def gain(self) -> np.ndarray:
        """(1, K) k_t(x*, a)² / (k_t(a, a) + λ), as `Posterior.gain` (a buffer that the
        next call overwrites)."""
        scratch = self._scratch
        np.add(self._candidate_variances, self.lambda_, out=scratch.denominator)
        np.square(self._cross, out=scratch.gain)
        np.divide(scratch.gain, scratch.denominator, out=scratch.gain)
        return scratch.gain_row

    def observe(self, pick: int) -> float:
        """Condition on one more observation of candidate `pick` (`Posterior.observe`);
        returns the new σ²_t(x*)."""
        t, scratch = self._steps, self._scratch
        new = scratch.rows[t]
        if t:
            scratch.at_pick_values[:t] = scratch.rows[:t, pick]
            torch.bmm(scratch.at_pick_views[t], scratch.factor_views[t], out=scratch.product)
            np.subtract(self.gram[pick], scratch.product_values, out=new)  # widens exactly
        else:
            new[:] = self.gram[pick]
        scale = scratch.scale_value
        scale[0] = self._candidate_variances.item(pick) + self.lambda_
        scratch.scale.sqrt_()  # torch's square root, as in the general loop
        root = scale.item(0)
        np.divide(new, root, out=new)  # c_t
        cross_at_pick = self._cross.item(pick) / root  # c_t(x*)
        scratch.cross_at_pick.fill(cross_at_pick)
        # cross -= c_t(x*)·c_t and candidate_variances -= c_t·c_t, as the general loop's
        # two addcmul_ calls (fused multiply-adds)
        scratch.state.addcmul_(scratch.coefficient_views[t], scratch.row_views[t], value=-1.0)
        self._variance -= cross_at_pick * cross_at_pick
        self._steps = t + 1
        return self._variance


def greedy_single(
    method: Method,
    queries: torch.Tensor,
    candidates: torch.Tensor,
    n: int,
    lambda_: float,
    forbid_repeats: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`greedy` for one prompt on the CPU: queries (1, d), candidates (K, d) or (1, K, d);
    same results as `greedy` (batch axis of 1)."""
    single = SinglePosterior(queries, candidates, lambda_, n)
    copies = single.copies[0]
    use_copies = method.copies_score_alike and bool(
        (copies != np.arange(single.num_candidates)).any()
    )
    picked = np.zeros(single.num_candidates, dtype=bool)
    scores_of, observe = method.scores, single.observe
    picks, variances = [], []
    for _ in range(n):
        scores = scores_of(single, None)[0]  # (K,); may be a view of the posterior
        if use_copies:
            scores = scores[copies]
        if forbid_repeats:
            scores = np.where(picked, -np.inf, scores)
            pick = int(scores.argmax())
            picked[pick] = True
        else:
            pick = int(scores.argmax())  # the first maximum: lowest index wins ties
        picks.append(pick)
        variances.append(observe(pick))
    indices = np.array([picks], dtype=np.int64)
    variances_array = np.array([variances])
    np.maximum(variances_array, 0.0, out=variances_array)  # round-off below 0, as clamp_min
    return torch.from_numpy(indices), torch.from_numpy(variances_array), single.prior_variances
