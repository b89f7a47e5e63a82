"""The Gaussian-process posterior that every selection method reads and updates.

Surrogate (PROTOCOL.md): the response to x is linear in a fixed embedding φ(x), with
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

All tensors are float64 on the inputs' device; B = prompts, K = candidates, n = steps.
"""

from __future__ import annotations

import torch

# Two candidates whose squared distance is below this fraction of their squared norm are
# copies of each other (exact duplicates give 0 up to float64 round-off, ~1e-16).
COPY_TOLERANCE = 1e-12


class Posterior:
    """Posterior of B prompts and their candidates, conditioned on the picks so far.

    Attributes (t = picks observed so far):
        lambda_: observation-noise variance λ.
        gram: (B, K, K) prior kernel k(a, b) between candidates.
        prior_cross: (B, K) prior k(x*, a) between each prompt and its candidates.
        prior_candidate_variances: (B, K) prior k(a, a).
        prior_variances: (B,) prior σ²(x*) = k(x*, x*).
        cross: (B, K) posterior k_t(x*, a).
        candidate_variances: (B, K) posterior k_t(a, a).
        variances: (B,) posterior σ²_t(x*).
        copies: (B, K) int64, for each candidate the lowest index holding the same
            embedding (itself if none): methods score copies alike, so ties between
            duplicates always go to the first copy.
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
            queries: (B, d) prompt embeddings, float64.
            candidates: (B, K, d) per-prompt candidates, or (K, d) shared by all prompts.
            lambda_: noise variance λ > 0.
            capacity: the most picks that will be observed (sizes the Cholesky factor).
            first_prompt: position of the first prompt in the whole call.
        """
        batch = queries.shape[0]
        if candidates.dim() == 2:  # shared: one Gram matrix for all prompts
            gram = (candidates @ candidates.T).expand(batch, -1, -1)
            prior_cross = queries @ candidates.T
        else:
            gram = torch.bmm(candidates, candidates.transpose(1, 2))
            prior_cross = torch.bmm(candidates, queries.unsqueeze(-1)).squeeze(-1)
        num_candidates = gram.shape[-1]

        self.lambda_ = float(lambda_)
        self.gram = gram
        self.prior_cross = prior_cross
        self.prior_candidate_variances = torch.diagonal(gram, dim1=1, dim2=2).clone()
        self.prior_variances = (queries * queries).sum(-1)
        self.cross = prior_cross.clone()
        self.candidate_variances = self.prior_candidate_variances.clone()
        self.variances = self.prior_variances.clone()
        self.copies = _first_copies(gram, self.prior_candidate_variances)
        self._factor = gram.new_zeros(batch, capacity, num_candidates)  # rows c_0, c_1, ...
        self._steps = 0
        self._rows = torch.arange(batch, device=gram.device)
        self.prompts = self._rows + first_prompt

    @property
    def batch_size(self) -> int:
        return self.gram.shape[0]

    @property
    def num_candidates(self) -> int:
        return self.gram.shape[-1]

    def variances_after(self) -> torch.Tensor:
        """(B, K) σ²_{t+1}(x*) if candidate a were picked next: σ²_t − k_t(x*,a)² / (k_t(a,a) + λ)."""
        return self.variances.unsqueeze(1) - self.gain()

    def gain(self) -> torch.Tensor:
        """(B, K) variance reduction k_t(x*, a)² / (k_t(a, a) + λ) of picking a next."""
        return self.cross.square() / (self.candidate_variances + self.lambda_)

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
        column = column.view(batch, num_candidates)
        if t:
            factor = self._factor[:, :t]  # (B, t, K): c_0 .. c_{t-1}
            at_pick = factor.gather(2, at.view(batch, 1, 1).expand(batch, t, 1))  # (B, t, 1)
            conditional = column - torch.bmm(at_pick.transpose(1, 2), factor).view(batch, -1)
        else:
            conditional = column
        scale = (self.candidate_variances.gather(1, at) + self.lambda_).sqrt_()  # >= sqrt(λ)
        new = conditional / scale  # c_t, (B, K)
        self._factor[:, t] = new
        cross_at_pick = self.cross.gather(1, at) / scale  # c_t(x*), (B, 1)
        self.cross.addcmul_(cross_at_pick, new, value=-1.0)
        # Clamp: round-off must not turn a fully explained variance negative.
        self.candidate_variances.addcmul_(new, new, value=-1.0).clamp_min_(0.0)
        self.variances.sub_(cross_at_pick.view(batch).square()).clamp_min_(0.0)
        self._steps = t + 1
        return column


def _first_copies(gram: torch.Tensor, norms_squared: torch.Tensor) -> torch.Tensor:
    """(B, K) for each candidate the lowest index whose embedding equals it (up to round-off).

    ‖a − b‖² = k(a,a) + k(b,b) − 2 k(a,b) is read off the Gram matrix; a candidate is its
    own first copy at worst, since ‖a − a‖² = 0 exactly. Zero vectors are copies of each other.
    """
    distances = (norms_squared.unsqueeze(2) + norms_squared.unsqueeze(1)).sub_(gram, alpha=2.0)
    # Copies have equal norms, so the row's own norm sets the scale.
    same = distances.le_(COPY_TOLERANCE * norms_squared.unsqueeze(2))
    return same.argmax(dim=2)  # first 1.0 (True) along the row
