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


class SinglePosterior:
    """Numpy views of a one-prompt `Posterior` (B = 1, one target), updated in place.

    Attributes as in `Posterior`, as (1, K) / (1,) float64 numpy arrays sharing memory
    with its tensors; `gram` is the (K, K) Gram matrix widened to float64 once (exact).
    """

    def __init__(self, posterior: Posterior) -> None:
        self.lambda_ = posterior.lambda_
        self.gram = posterior.gram[0].to(torch.float64).numpy()
        for name in (
            "prior_cross",
            "prompt_norms",
            "prior_candidate_variances",
            "prior_variances",
            "variances",
            "copies",
        ):
            setattr(self, name, getattr(posterior, name).numpy())
        num_candidates = self.num_candidates = self.gram.shape[0]
        # k_t(x*, ·) and k_t(·, ·) in one (2, K) torch buffer, so that one `addcmul_` with
        # the coefficients (c_t(x*), c_t) does both rank-one updates.
        self._state = torch.cat([posterior.cross, posterior.candidate_variances])
        self.cross, self.candidate_variances = self._state.numpy()[:, None]  # (1, K) each
        self._coefficients = torch.empty(2, num_candidates, dtype=torch.float64)
        self._factor = posterior._factor  # (1, n, K), rows c_0, c_1, ...
        self._rows = self._factor.numpy()[0]
        # scratch, allocated by torch like the general loop's temporaries
        self._at_pick = torch.empty(1, 1, self._rows.shape[0], dtype=torch.float64)
        self._product = torch.empty(1, 1, num_candidates, dtype=torch.float64)
        self._scale = torch.empty(1, 1, dtype=torch.float64)
        self._at_pick_values = self._at_pick.numpy()[0, 0]
        self._product_values = self._product.numpy()[0, 0]
        self._scale_value = self._scale.numpy()[0]  # (1,), read after sqrt_
        self._coefficient_values = self._coefficients.numpy()
        self._steps = 0

    def gain(self) -> np.ndarray:
        """(1, K) k_t(x*, a)² / (k_t(a, a) + λ), as `Posterior.gain`."""
        return np.square(self.cross) / (self.candidate_variances + self.lambda_)

    def observe(self, pick: int) -> None:
        """Condition on one more observation of candidate `pick` (`Posterior.observe`)."""
        t = self._steps
        column = self.gram[pick]
        if t:
            self._at_pick_values[:t] = self._rows[:t, pick]
            torch.bmm(self._at_pick[:, :, :t], self._factor[:, :t], out=self._product)
            conditional = column - self._product_values
        else:
            conditional = column
        scale = self._scale_value
        scale[0] = self.candidate_variances[0, pick] + self.lambda_
        self._scale.sqrt_()  # torch's square root, as in the general loop
        new = self._rows[t]
        np.divide(conditional, scale[0], out=new)  # c_t
        cross_at_pick = self.cross[0, pick] / scale[0]  # c_t(x*)
        coefficients = self._coefficient_values
        coefficients[0] = cross_at_pick
        coefficients[1] = new
        # cross -= c_t(x*)·c_t and candidate_variances -= c_t·c_t, as the general loop's
        # two addcmul_ calls (fused multiply-adds)
        self._state.addcmul_(self._coefficients, self._factor[0, t], value=-1.0)
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
        picked[pick] = True
        picks[0, t] = pick
        variances[0, t] = single.variances[0]
    return (
        torch.from_numpy(picks),
        torch.from_numpy(variances).clamp_min_(0.0),
        posterior.prior_variances,
    )
