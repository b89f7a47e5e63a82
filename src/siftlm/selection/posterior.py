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

Multi-vector prompts: a prompt may have m targets x*_1, ..., x*_m (e.g. the embeddings of
its chunks). The posterior then tracks k_t(x*_j, a) for every target, and SIFT minimises
the sum of the targets' posterior variances, Σ_j σ²_t(x*_j), as activeft's VTL does for an
m × d target. A masked (absent) target is a zero vector: it has no variance, no covariance
with anything, and so changes no score or sum.

Precision: the kernel values (Gram matrix, k(x*, x), k(x*, x*)) are computed in the
inputs' precision (float32 inputs: float32 BLAS, as in activeft; float64: float64), and
everything after them in float64. B = prompts, K = candidates, n = steps.
"""

from __future__ import annotations

import numpy as np
import torch


class Posterior:
    """Posterior of B prompts and their candidates, conditioned on the picks so far.

    Attributes (t = picks observed so far; float64 on the inputs' device; x̄* is the prompt's
    embedding, or for a multi-vector prompt the mean of its targets):
        lambda_: observation-noise variance λ.
        gram: (B, K, K) prior kernel k(a, b) between candidates, in the inputs' precision.
        prior_cross: (B, K) prior k(x̄*, a) between each prompt and its candidates (the
            relevance that nn, mmr and hull read).
        prompt_norms: (B,) ‖x̄*‖.
        prior_candidate_variances: (B, K) prior k(a, a).
        prior_variances: (B,) prior σ²(x*) = k(x*, x*); for m targets Σ_j k(x*_j, x*_j).
        cross: (B, K) posterior k_t(x*, a); for m targets (B, m, K) k_t(x*_j, a).
        candidate_variances: (B, K) posterior k_t(a, a).
        variances: (B,) posterior σ²_t(x*); for m targets Σ_j σ²_t(x*_j).
        target_variances: (B, m) posterior σ²_t(x*_j) of each target; None for one target.
        targets: (B,) float64 number of (unmasked) targets per prompt; None for one target.
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
        target_mask: torch.Tensor | None = None,
    ) -> None:
        """
        Args:
            queries: (B, d) prompt embeddings, or (B, m, d) m targets per prompt; float32 or
                float64.
            candidates: (B, K, d) per-prompt candidates, or (K, d) shared by all prompts;
                same dtype and device as `queries`.
            lambda_: noise variance λ > 0.
            capacity: the most picks that will be observed (sizes the Cholesky factor).
            first_prompt: position of the first prompt in the whole call.
            target_mask: (B, m) bool, True where a target exists (multi-vector queries
                only; None: all exist). Every prompt needs at least one.
        """
        batch = queries.shape[0]
        gram, copies = prior_kernel(candidates)  # (K, K) or (B, K, K); (K,) or (B, K)
        if candidates.dim() == 2:  # shared: one Gram matrix for all prompts
            gram, copies = gram.expand(batch, -1, -1), copies.expand(batch, -1)
        wide = torch.float64

        self.lambda_ = float(lambda_)
        self.gram = gram  # inputs' precision; columns are widened as they are read
        self.prior_candidate_variances = torch.diagonal(gram, dim1=1, dim2=2).to(wide)
        self.target_variances: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        if queries.dim() == 2:
            prior_cross, prior_variances = prior_prompt(queries, candidates)
            self.prior_cross, self.prior_variances = prior_cross.to(wide), prior_variances.to(wide)
            self.prompt_norms = self.prior_variances.sqrt()
            self.cross = self.prior_cross.clone()
        else:
            self._start_targets(queries, candidates, target_mask)
        self.candidate_variances = self.prior_candidate_variances.clone()
        self.variances = self.prior_variances.clone()
        self.copies = copies
        self._capacity = capacity
        self._factor: torch.Tensor | None = None  # (B, capacity, K) rows c_0, c_1, ..; lazily
        self._steps = 0
        self.prompts = torch.arange(batch, device=gram.device) + first_prompt

    def _start_targets(
        self, queries: torch.Tensor, candidates: torch.Tensor, target_mask: torch.Tensor | None
    ) -> None:
        """Multi-vector prompts, queries (B, m, d): absent targets become zero vectors."""
        batch, m, dim = queries.shape
        wide = torch.float64
        if target_mask is not None:
            queries = torch.where(target_mask.unsqueeze(-1), queries, 0.0)
            counts = target_mask.sum(1).to(wide)
        else:
            counts = torch.full((batch,), float(m), dtype=wide, device=queries.device)
        if candidates.dim() == 2:
            cross = _cross(queries.reshape(batch * m, dim), candidates).view(batch, m, -1)
        else:
            cross = torch.bmm(candidates, queries.transpose(1, 2)).transpose(1, 2)
        self.cross = cross.to(wide)  # (B, m, K)
        self.targets = counts
        self.prior_cross = self.cross.sum(1).div_(counts.unsqueeze(1))  # k(x̄*, a), linearity
        mean = queries.to(wide).sum(1).div_(counts.unsqueeze(1))  # x̄*, (B, d)
        self.prompt_norms = (mean * mean).sum(-1).sqrt()
        self.target_variances = (queries * queries).sum(-1).to(wide)  # (B, m)
        self.prior_variances = self.target_variances.sum(1)

    @property
    def batch_size(self) -> int:
        return self.gram.shape[0]

    @property
    def num_candidates(self) -> int:
        return self.gram.shape[-1]

    @property
    def capacity(self) -> int:
        """The number of picks the posterior was sized for (n of the call)."""
        return self._capacity

    def gain(self) -> torch.Tensor:
        """(B, K) variance reduction Σ_j k_t(x*_j, a)² / (k_t(a, a) + λ) of picking a next."""
        squared = self.cross.square()
        if self.target_variances is not None:
            squared = squared.sum(1)
        return squared.div_(self.candidate_variances + self.lambda_)

    def observe(self, picks: torch.Tensor) -> torch.Tensor:
        """Condition every prompt on one more (noisy) observation of its pick.

        Args:
            picks: (B,) int64 candidate index per prompt.
        Returns:
            (B, K) the prior kernel column k(·, x_pick), for methods that need similarities.
        """
        t = self._steps
        batch, num_candidates = self.batch_size, self.num_candidates
        if self._factor is None:
            self._factor = self.cross.new_zeros(batch, self._capacity, num_candidates)
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
        if self.target_variances is None:
            cross_at_pick = self.cross.gather(1, at).div_(scale)  # c_t(x*), (B, 1)
            self.cross.addcmul_(cross_at_pick, new, value=-1.0)
            self.variances.sub_(cross_at_pick.view(batch).square())
        else:
            targets = self.cross.shape[1]
            at_targets = at.view(batch, 1, 1).expand(batch, targets, 1)
            cross_at_pick = self.cross.gather(2, at_targets).div_(scale.unsqueeze(1))  # (B, m, 1)
            self.cross.addcmul_(cross_at_pick, new.unsqueeze(1), value=-1.0)
            self.target_variances.sub_(cross_at_pick.view(batch, targets).square())
            self.variances = self.target_variances.sum(1)
        # Round-off may leave a fully explained variance at -1e-17; that is harmless here
        # (λ > 0 keeps every denominator positive) and clamped where it is reported.
        self.candidate_variances.addcmul_(new, new, value=-1.0)
        self._steps = t + 1
        return column


def prior_kernel(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gram matrix k(a, b) in the inputs' precision and the first copies (`_first_copies`).

    Shapes: candidates (K, d) -> (K, K), (K,); (B, K, d) -> (B, K, K), (B, K). Shared with
    the single-prompt path (`siftlm.selection.single`), which needs the same values bitwise.
    """
    gram = candidates @ candidates.transpose(-1, -2)
    if candidates.dim() == 2 and candidates.device.type == "cpu":
        copies = first_copies_numpy(candidates.numpy(), gram.numpy())
        return gram, torch.from_numpy(copies)
    return gram, _first_copies(candidates, gram)


def prior_prompt(
    queries: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-target prompts' prior k(x*, a) (B, K) and k(x*, x*) (B,), in the inputs'
    precision (queries (B, d); candidates (K, d) or (B, K, d))."""
    return _cross(queries, candidates), (queries * queries).sum(-1)


def _cross(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Prior k(x*, a): queries (B, d) with candidates (K, d) -> (B, K), or (B, K, d) -> (B, K)."""
    if candidates.dim() == 2:
        return queries @ candidates.T
    return torch.bmm(candidates, queries.unsqueeze(-1)).squeeze(-1)


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


def first_copies_numpy(candidates: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """`_first_copies` for one candidate set in numpy (K, d), (K, K) -> (K,) int64: the same
    IEEE operations (a + b, a − 2b, a·2⁻¹⁷, ≤, ==) and the same first-suspect rule, so the
    same result, at a fraction of torch's per-operation cost on a (K, K) matrix.

    Memory: two (K, K) temporaries in the inputs' precision and one bool; it is used where
    the Gram matrix is a single (K, K) matrix.
    """
    norms_squared = np.diagonal(gram)
    distances = norms_squared[:, None] + norms_squared[None, :]
    np.subtract(distances, np.multiply(gram, 2), out=distances)  # 2·k(a, b) is exact
    tolerance = 64 * np.finfo(gram.dtype).eps  # a power of two: the product is exact
    threshold = (norms_squared * gram.dtype.type(tolerance))[:, None]
    first = np.less_equal(distances, threshold).argmax(axis=-1)  # the first True
    suspects = np.flatnonzero(first != np.arange(first.shape[0]))  # usually none
    if suspects.size:
        same = (candidates[first[suspects]] == candidates[suspects]).all(-1)
        first[suspects[~same]] = suspects[~same]
    return first.astype(np.int64, copy=False)
