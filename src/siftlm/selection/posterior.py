"""The Gaussian-process posterior that every selection method reads and updates.

Surrogate (docs/method.md, section 2): the response to x is linear in a fixed embedding φ(x), with
kernel k(x, x') = φ(x)ᵀφ(x') and observation-noise variance λ. After observing the picks
X = (x_1, ..., x_t) (repeats allowed: each observation carries its own noise), the
posterior covariance is the *conditional kernel*

    k_t(a, b) = k(a, b) − k_X(a)ᵀ (K_XX + λI)⁻¹ k_X(b),

and σ²_t(x*) = k_t(x*, x*) is the prompt's posterior variance. Conditioning on one more
pick j is a rank-one update (Schur complement),

    k_{t+1}(a, b) = k_t(a, b) − c_t(a) c_t(b),   c_t(a) = k_t(a, j) / sqrt(k_t(j, j) + λ),

so the columns c_0, ..., c_{t-1} form the pivoted Cholesky factor of K_XX + λI extended to
all candidates. No matrix is ever inverted: each step costs O(B·K·t) on top of one
precomputed Gram matrix (O(B·K²·d) once, or O(K²·d) when the candidates are shared).

Precision: the kernel values (Gram matrix, k(x*, x), k(x*, x*)) are computed in the
inputs' precision (float32 inputs: float32 BLAS, as in activeft; float64: float64), and
everything after them in float64. B = prompts, K = candidates, n = steps.
"""

from __future__ import annotations

import torch


class Posterior:
    """Posterior of B prompts and their candidates, conditioned on the picks so far.

    Attributes (t = picks observed so far; float64 on the inputs' device):
        lambda_: observation-noise variance λ.
        gram: (B, K, K) prior kernel k(a, b) between candidates, in the inputs' precision.
        prior_cross: (B, K) prior k(x*, a) between each prompt and its candidates.
        prior_candidate_variances: (B, K) prior k(a, a).
        prior_variances: (B,) prior σ²(x*) = k(x*, x*).
        cross: (B, K) posterior k_t(x*, a).
        candidate_variances: (B, K) posterior k_t(a, a).
        variances: (B,) posterior σ²_t(x*).
        copies: (B, K) int64, for each candidate the lowest index holding a bitwise-equal
            embedding (itself if none): methods score copies alike, so that ties between
            duplicates go to the first copy whatever the round-off.
        prompts: (B,) int64 position of each prompt in the whole call to `select` (which
            may process prompts in chunks), for methods that draw per-prompt randomness.
    """

    def __init__(
        self,
        queries: torch.Tensor,
        candidates: torch.Tensor,
        lambda_: float,
        capacity: int,
        first_prompt: int = 0,
    ) -> None:
        """
        Args:
            queries: (B, d) prompt embeddings, float32 or float64.
            candidates: (B, K, d) per-prompt candidates, or (K, d) shared by all prompts;
                same dtype and device as `queries`.
            lambda_: noise variance λ > 0.
            capacity: the most picks that will be observed (sizes the Cholesky factor).
            first_prompt: position of the first prompt in the whole call.
        """
        batch = queries.shape[0]
        num_candidates = candidates.shape[-2]
        gram = candidates @ candidates.transpose(-1, -2)  # (K, K) or (B, K, K)
        copies = _first_copies(candidates, gram)
        if candidates.dim() == 2:  # shared: one Gram matrix for all prompts
            prior_cross = queries @ candidates.T
            gram, copies = gram.expand(batch, -1, -1), copies.expand(batch, -1)
        else:
            prior_cross = torch.bmm(candidates, queries.unsqueeze(-1)).squeeze(-1)
        wide = torch.float64

        self.lambda_ = float(lambda_)
        self.gram = gram  # inputs' precision; columns are widened as they are read
        self.prior_cross = prior_cross.to(wide)
        self.prior_candidate_variances = torch.diagonal(gram, dim1=1, dim2=2).to(wide)
        self.prior_variances = (queries * queries).sum(-1).to(wide)
        self.cross = self.prior_cross.clone()
        self.candidate_variances = self.prior_candidate_variances.clone()
        self.variances = self.prior_variances.clone()
        self.copies = copies
        self._factor = self.cross.new_zeros(batch, capacity, num_candidates)  # rows c_0, c_1, ..
        self._steps = 0
        self.prompts = torch.arange(batch, device=gram.device) + first_prompt

    @property
    def batch_size(self) -> int:
        return self.gram.shape[0]

    @property
    def num_candidates(self) -> int:
        return self.gram.shape[-1]

    def gain(self) -> torch.Tensor:
        """(B, K) variance reduction k_t(x*, a)² / (k_t(a, a) + λ) of picking a next."""
        return self.cross.square().div_(self.candidate_variances + self.lambda_)

    def observe(self, picks: torch.Tensor) -> torch.Tensor:
        """Condition every prompt on one more (noisy) observation of its pick.

        Args:
            picks: (B,) int64 candidate index per prompt.
        Returns:
            (B, K) the prior kernel column k(·, x_pick), for methods that need similarities.
        """
        t = self._steps
        batch, num_candidates = self.batch_size, self.num_candidates
        at = picks.view(batch, 1)
        # k(x_pick, ·): row `pick` of the (symmetric) Gram matrix; gather reads shared,
        # expanded Gram matrices without copying them.
        column = self.gram.gather(1, at.view(batch, 1, 1).expand(batch, 1, num_candidates))
        column = column.view(batch, num_candidates).to(self.cross.dtype)
        if t:
            factor = self._factor[:, :t]  # (B, t, K): c_0 .. c_{t-1}
            at_pick = factor.gather(2, at.view(batch, 1, 1).expand(batch, t, 1))  # (B, t, 1)
            conditional = column - torch.bmm(at_pick.transpose(1, 2), factor).view(batch, -1)
        else:
            conditional = column
        scale = (self.candidate_variances.gather(1, at) + self.lambda_).sqrt_()  # >= sqrt(λ)
        new = conditional / scale  # c_t, (B, K)
        self._factor[:, t] = new
        cross_at_pick = self.cross.gather(1, at).div_(scale)  # c_t(x*), (B, 1)
        self.cross.addcmul_(cross_at_pick, new, value=-1.0)
        # Round-off may leave a fully explained variance at -1e-17; that is harmless here
        # (λ > 0 keeps every denominator positive) and clamped where it is reported.
        self.candidate_variances.addcmul_(new, new, value=-1.0)
        self.variances.sub_(cross_at_pick.view(batch).square())
        self._steps = t + 1
        return column


def _first_copies(candidates: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """For each candidate, the lowest index of a bitwise-equal candidate (itself if none).

    Shapes: candidates (..., K, d), gram (..., K, K) -> (..., K) int64. Suspects are read
    off the Gram matrix (‖a − b‖² = k(a,a) + k(b,b) − 2k(a,b) within round-off of 0), then
    confirmed element by element. A candidate whose first suspect is only nearly equal
    keeps itself.
    """
    norms_squared = torch.diagonal(gram, dim1=-2, dim2=-1)
    distances = (norms_squared.unsqueeze(-1) + norms_squared.unsqueeze(-2)).sub_(gram, alpha=2)
    tolerance = 64 * torch.finfo(gram.dtype).eps
    first = distances.le_(tolerance * norms_squared.unsqueeze(-1)).max(dim=-1).indices  # 1st 1.0
    own = torch.arange(first.shape[-1], device=first.device).expand_as(first)
    suspects = (first != own).nonzero(as_tuple=True)  # usually few
    if suspects[0].numel():
        *batch, positions = suspects
        same = (candidates[(*batch, first[suspects])] == candidates[suspects]).all(-1)
        first[tuple(index[~same] for index in suspects)] = positions[~same]
    return first
