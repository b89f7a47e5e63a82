"""SIFT: pick the candidate that minimises the prompt's posterior variance.

    x_{t+1} = argmin_x σ²_{X_t ∪ {x}}(x*) = argmax_x k_t(x*, x)² / (k_t(x, x) + λ)

with the conditional kernel k_t of `siftlm.selection.posterior`. Large λ weighs relevance
(λ → ∞ gives nearest neighbours by |k(x*, x)|), small λ weighs non-redundancy. As in the
reference implementation (activeft's VTL), a candidate may be picked again: the repeat
is another noisy observation, so it is worth less each time but not nothing. Pass
`distinct=True` to `select` to forbid repeats.

A multi-vector prompt (m targets) sums the gains over its targets, which minimises the sum
of their posterior variances (activeft's VTL with an m × d target).
"""

from __future__ import annotations

from typing import Any

import torch

from siftlm.selection.posterior import Posterior
from siftlm.selection.registry import Method, register


@register
class SIFT(Method):
    """Greedy minimisation of the prompt's posterior variance (Hübotter et al., 2025)."""

    name = "sift"
    posterior_only = True

    def scores(self, posterior: Posterior, state: Any) -> torch.Tensor:
        return posterior.gain()
