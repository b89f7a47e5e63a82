"""The single-prompt CPU path: the same greedy loop for one prompt, without torch's per-call cost.

One prompt's n steps are sequential, and each is ~30 small torch operations on (1, K)
tensors, so the general loop is bound by torch's per-operation overhead (a few µs each).
Here the loop runs on numpy views of the same `Posterior` buffers; the operations whose
rounding torch and numpy may do differently stay torch calls on those buffers: the
(1, t) × (t, K) product (MKL), the square root (torch's is not always correctly rounded)
and the two rank-one updates (`addcmul_`, fused multiply-adds). Everything else is an
elementwise IEEE operation that rounds the same in both. Picks and variances are therefore
bitwise those of the general loop (`tests/selection/test_select_single.py` checks it).

Used for a batch of one single-target prompt on the CPU with a method whose scores only
read the posterior (`Method.posterior_only`: sift, nn, nn-f, us).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from siftlm.selection.posterior import Posterior
from siftlm.selection.registry import Method


def applies(method: Method, posterior: Posterior) -> bool:
    """Whether `greedy_single` can run this method on this posterior."""
    return (
        method.posterior_only
        and posterior.batch_size == 1
        and posterior.target_variances is None
        and posterior.gram.device.type == "cpu"
    )


class _Scratch:
    """Torch buffers for n steps over K candidates and their per-step views, built once per
    thread and shape and reused by later calls (building the views costs as much as a call).

    Every buffer is written before it is read within a call, so reuse changes nothing.
    """

    def __init__(self, n: int, num_candidates: int) -> None:
        wide = torch.float64
        self.shape = (n, num_candidates)
        self.factor = torch.empty(1, n, num_candidates, dtype=wide)  # rows c_0, c_1, ...
        self.rows = self.factor.numpy()[0]
        self.at_pick = torch.empty(1, 1, n, dtype=wide)  # c_0..c_{t-1} at the pick
        self.at_pick_values = self.at_pick.numpy()[0, 0]
        self.product = torch.empty(1, 1, num_candidates, dtype=wide)
        self.product_values = self.product.numpy()[0, 0]
        self.scale = torch.empty(1, 1, dtype=wide)
        self.scale_value = self.scale.numpy()[0]  # (1,), read after sqrt_
        # k_t(x*, ·) and k_t(·, ·) in one (2, K) buffer, so that one `addcmul_` with the
        # coefficients (c_t(x*), c_t) does both rank-one updates.
        self.state = torch.empty(2, num_candidates, dtype=wide)
        self.coefficients = torch.empty(2, num_candidates, dtype=wide)
        self.coefficient_values = self.coefficients.numpy()
        self.at_pick_views = [self.at_pick[:, :, :t] for t in range(n)]
        self.factor_views = [self.factor[:, :t] for t in range(n)]
        self.row_views = [self.factor[0, t] for t in range(n)]


_local = threading.local()


def _scratch(n: int, num_candidates: int) -> _Scratch:
    scratch = getattr(_local, "scratch", None)
    if scratch is None or scratch.shape != (n, num_candidates):
        with torch.inference_mode(False):  # normal tensors: usable in and out of that mode
            scratch = _local.scratch = _Scratch(n, num_candidates)
    return scratch


class SinglePosterior:
    """Numpy views of a one-prompt `Posterior` (B = 1, one target), updated in place.

    Attributes as in `Posterior`, as (1, K) / (1,) float64 numpy arrays; `gram` is the
    (K, K) Gram matrix in the inputs' precision (rows are widened as they are read).
    """

    def __init__(self, posterior: Posterior) -> None:
        self.lambda_ = posterior.lambda_
        self.gram = posterior.gram[0].numpy()
        for name in (
            "prior_cross",
            "prompt_norms",
            "prior_candidate_variances",
            "prior_variances",
            "copies",
        ):
            setattr(self, name, getattr(posterior, name).numpy())
        self.variances = posterior.variances.numpy().copy()
        self.num_candidates = self.gram.shape[0]
        scratch = self._scratch = _scratch(posterior.capacity, self.num_candidates)
        self.cross, self.candidate_variances = scratch.state.numpy()[:, None]  # (1, K) each
        self.cross[:] = posterior.cross.numpy()
        self.candidate_variances[:] = posterior.candidate_variances.numpy()
        self._gain = np.empty_like(self.cross)
        self._denominator = np.empty_like(self.cross)
        self._steps = 0

    def gain(self) -> np.ndarray:
        """(1, K) k_t(x*, a)² / (k_t(a, a) + λ), as `Posterior.gain` (a buffer that the
        next call overwrites)."""
        np.add(self.candidate_variances, self.lambda_, out=self._denominator)
        np.square(self.cross, out=self._gain)
        return np.divide(self._gain, self._denominator, out=self._gain)

    def observe(self, pick: int) -> None:
        """Condition on one more observation of candidate `pick` (`Posterior.observe`)."""
        t, scratch = self._steps, self._scratch
        new = scratch.rows[t]
        if t:
            scratch.at_pick_values[:t] = scratch.rows[:t, pick]
            torch.bmm(scratch.at_pick_views[t], scratch.factor_views[t], out=scratch.product)
            np.subtract(self.gram[pick], scratch.product_values, out=new)  # widens exactly
        else:
            new[:] = self.gram[pick]
        scale = scratch.scale_value
        scale[0] = self.candidate_variances[0, pick] + self.lambda_
        scratch.scale.sqrt_()  # torch's square root, as in the general loop
        np.divide(new, scale[0], out=new)  # c_t
        cross_at_pick = float(self.cross[0, pick] / scale[0])  # c_t(x*)
        coefficients = scratch.coefficient_values
        coefficients[0] = cross_at_pick
        coefficients[1] = new
        # cross -= c_t(x*)·c_t and candidate_variances -= c_t·c_t, as the general loop's
        # two addcmul_ calls (fused multiply-adds)
        scratch.state.addcmul_(scratch.coefficients, scratch.row_views[t], value=-1.0)
        self.variances -= cross_at_pick * cross_at_pick
        self._steps = t + 1


def greedy_single(
    method: Method, posterior: Posterior, n: int, forbid_repeats: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`greedy` for one prompt on the CPU; same arguments and results (batch axis of 1)."""
    single = SinglePosterior(posterior)
    copies = single.copies[0]
    use_copies = method.copies_score_alike and bool(
        (copies != np.arange(single.num_candidates)).any()
    )
    picked = np.zeros(single.num_candidates, dtype=bool)
    picks = np.empty((1, n), dtype=np.int64)
    variances = np.empty((1, n))
    for t in range(n):
        scores = method.scores(single, None)[0]  # (K,); may be a view of the posterior
        if use_copies:
            scores = scores[copies]
        if forbid_repeats:
            scores = np.where(picked, -np.inf, scores)
        pick = int(scores.argmax())  # the first maximum: lowest index wins ties
        single.observe(pick)
        if forbid_repeats:
            picked[pick] = True
        picks[0, t] = pick
        variances[0, t] = single.variances[0]
    return (
        torch.from_numpy(picks),
        torch.from_numpy(variances).clamp_min_(0.0),
        posterior.prior_variances,
    )
