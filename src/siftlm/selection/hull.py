"""HullFT: the prompt's embedding as a sparse convex combination of its candidates.

HullFT (Khamis & Maalouf, 2026, arXiv 2605.30337; PROTOCOL.md) picks a multiset of n
candidates whose mean embedding approximates the prompt's:

1. Frank-Wolfe on the probability simplex over the K candidates,

       w = argmin_{w ≥ 0, Σ w = 1} ‖x* − Σ_i w_i x_i‖²,

   from the best single candidate, with exact line search; each iteration adds at most
   one candidate to the support, so the support has at most `iterations` (default n)
   candidates. Stops early once the duality gap is zero to round-off.
2. Rounding to integer counts c (Σ c = n) on that support: c = ⌊n·w⌋, then the remainder
   one by one to the candidate that lowers E(c) = ‖x* − Σ_i c_i x_i / n‖² most, then
   local swaps (one count moved between two support candidates) while one lowers E.
3. The picks: each candidate repeated its count times, by decreasing count, ties by
   decreasing cosine with x*, then by lowest index (repeats are consecutive, which is what
   gradient reuse needs).

Everything is computed from kernel values only (k(x_i, x_j), k(x*, x_i), ‖x*‖²), in
float64, per prompt. A multi-vector prompt is approximated by the mean of its targets.
Ties (equal objective) go to the lowest index, so exact duplicates never enter the support
twice. As every method, `Selection.variances` is the SIFT posterior after each pick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from siftlm.selection.posterior import Posterior
from siftlm.selection.registry import Method, register

# Relative size below which a Frank-Wolfe gap or a swap's gain counts as round-off.
_TOLERANCE = 1e-12


def frank_wolfe(
    gram: np.ndarray, cross: np.ndarray, norm_squared: float, iterations: int
) -> np.ndarray:
    """(K,) simplex weights w minimising ‖x* − Σ w_i x_i‖², support <= iterations.

    Args:
        gram: (K, K) float64 k(x_i, x_j).  cross: (K,) float64 k(x*, x_i).
        norm_squared: ‖x*‖².  iterations: Frank-Wolfe steps, counting the start vertex.
    """
    diagonal = np.diagonal(gram)
    scale = _TOLERANCE * max(norm_squared, float(diagonal.max()), 1e-300)
    start = int(np.argmin(diagonal - 2.0 * cross))  # the best single candidate
    weights = np.zeros_like(cross)
    weights[start] = 1.0
    gram_weights = gram[start].copy()  # G w
    for _ in range(iterations - 1):
        half_gradient = gram_weights - cross  # ½ ∇ of the objective
        vertex = int(np.argmin(half_gradient))
        quadratic = float(weights @ gram_weights)  # wᵀGw
        gap = quadratic - float(weights @ cross) - half_gradient[vertex]  # ½ gᵀ(w − e_s)
        curvature = gram[vertex, vertex] - 2.0 * gram_weights[vertex] + quadratic  # ‖x_s − Xw‖²
        if gap <= scale or curvature <= 0.0:
            break
        step = min(1.0, gap / curvature)
        weights *= 1.0 - step
        weights[vertex] += step
        gram_weights *= 1.0 - step
        gram_weights += step * gram[vertex]
    return weights


def round_counts(
    weights: np.ndarray, gram: np.ndarray, cross: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Integer counts summing to n on the support of `weights`: (support (S,), counts (S,)).

    Minimises n²·E(c) = n²‖x*‖² − 2n Σ c_i k(x*, x_i) + cᵀGc by floor, greedy remainder and
    improving swaps (see the module docstring); candidates with count 0 are dropped.
    """
    support = np.flatnonzero(weights > 0.0)
    sub_gram = gram[np.ix_(support, support)]
    sub_cross = cross[support]
    diagonal = np.diagonal(sub_gram)
    counts = np.minimum(np.floor(n * weights[support]), n).astype(np.int64)
    while counts.sum() < n:  # + e_j changes n²E by 2(Gc)_j + G_jj − 2n k(x*, x_j)
        gain = 2.0 * (sub_gram @ counts) + diagonal - 2.0 * n * sub_cross
        counts[int(np.argmin(gain))] += 1
    scale = _TOLERANCE * n * n * max(float(diagonal.max()), float(np.abs(sub_cross).max()), 1e-300)
    pair_cost = diagonal[:, None] + diagonal[None, :] - 2.0 * sub_gram  # ‖x_i − x_j‖²
    for _ in range(10 * n):  # each swap lowers E by more than round-off: few are made
        moved = 2.0 * (sub_gram @ counts) - 2.0 * n * sub_cross
        change = moved[None, :] - moved[:, None] + pair_cost  # move one count i -> j
        change[counts == 0, :] = np.inf
        np.fill_diagonal(change, np.inf)
        source, target = np.unravel_index(int(np.argmin(change)), change.shape)
        if not change[source, target] < -scale:
            break
        counts[source] -= 1
        counts[target] += 1
    kept = counts > 0
    return support[kept], counts[kept]


def pick_order(support: np.ndarray, counts: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    """(n,) the support repeated by counts: by decreasing count, then cosine, then index."""
    order = np.lexsort((support, -cosines[support], -counts))
    return np.repeat(support[order], counts[order])


@register
@dataclass
class HullFT(Method):
    """HullFT (Khamis & Maalouf, 2026): a sparse convex reconstruction of the prompt's
    embedding from its candidates, rounded to n picks with repeats (see `hull`).

    `iterations`: Frank-Wolfe steps, so at most that many distinct picks (None: n).

    The picks are planned at `start` and replayed one per step through `scores`, so the
    greedy loop still conditions the SIFT posterior on each pick (`Selection.variances`).
    """

    iterations: int | None = None
    name = "hull"
    repeats = True
    copies_score_alike = False  # the plan is replayed as it is

    def __post_init__(self) -> None:
        if self.iterations is not None and (
            isinstance(self.iterations, bool)
            or not isinstance(self.iterations, int)
            or self.iterations < 1
        ):
            raise ValueError(
                f"HullFT iterations must be a positive integer, got {self.iterations!r}"
            )

    def start(self, posterior: Posterior, seed: int) -> dict[str, Any]:
        n = posterior.capacity
        iterations = n if self.iterations is None else self.iterations
        norms = posterior.prior_candidate_variances.sqrt()
        plans = []
        for b in range(posterior.batch_size):
            gram = posterior.gram[b].to(torch.float64).cpu().numpy()
            cross = posterior.prior_cross[b].cpu().numpy()
            norm = float(posterior.prompt_norms[b])
            weights = frank_wolfe(gram, cross, norm * norm, iterations)
            support, counts = round_counts(weights, gram, cross, n)
            denominator = norms[b].cpu().numpy() * norm
            cosines = np.divide(cross, denominator, out=np.zeros_like(cross), where=denominator > 0)
            plans.append(pick_order(support, counts, cosines))
        plan = torch.from_numpy(np.stack(plans)).to(posterior.gram.device)
        return {"plan": plan, "step": 0}

    def scores(self, posterior: Posterior, state: dict[str, Any]) -> torch.Tensor:
        at = state["plan"][:, state["step"]].unsqueeze(1)
        scores = posterior.cross.new_zeros(posterior.batch_size, posterior.num_candidates)
        return scores.scatter_(1, at, 1.0)  # one-hot: the planned pick is the argmax

    def update(
        self, posterior: Posterior, state: dict[str, Any], picks: torch.Tensor, column: torch.Tensor
    ) -> dict[str, Any]:
        return {**state, "step": state["step"] + 1}
