"""The greedy selection loop, written once for every method.

Batched over prompts and vectorised over candidates: the only Python loop is over the n
steps. Each step: score (B, K) -> copies score alike -> mask repeats if forbidden ->
argmax -> condition the posterior on the picks -> update the method's state.

Ties: `torch.max` returns the index of the first maximum, so equal scores go to the
lowest candidate index; exact duplicates share the score of their first copy (see
`Posterior.copies`), so round-off can never make a later copy win over an earlier one.
"""

from __future__ import annotations

import torch

from siftlm.selection import single
from siftlm.selection.posterior import Posterior
from siftlm.selection.registry import Method

# One prompt on the CPU takes the single-prompt path (`single`) where the method allows:
# bitwise the same results, several times faster. Tests switch it off to compare.
SINGLE_PROMPT_PATH = True


def greedy(
    method: Method,
    queries: torch.Tensor,
    candidates: torch.Tensor,
    n: int,
    lambda_: float,
    distinct: bool,
    seed: int,
    first_prompt: int = 0,
    target_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run `method` for n steps on validated inputs.

    Args:
        method: the scoring rule.
        queries: (B, d) prompt embeddings, or (B, m, d) m targets each; float32 or float64.
        candidates: (B, K, d) per-prompt candidates or (K, d) shared, same dtype.
        n: number of picks per prompt.
        lambda_: noise variance λ of the posterior.
        distinct: forbid repeats (methods with `repeats` set decide for themselves).
        seed: seed for randomised methods.
        first_prompt: position of queries[0] in the whole call (prompts come in chunks).
        target_mask: (B, m) bool, the targets that exist (multi-vector queries; None: all).

    Returns:
        indices (B, n) int64, variances (B, n) float64 posterior σ²(x*) after each pick,
        prior_variances (B,) float64.
    """
    forbid_repeats = distinct if method.repeats is None else not method.repeats
    if SINGLE_PROMPT_PATH and single.applies(method, queries):
        return single.greedy_single(method, queries, candidates, n, lambda_, forbid_repeats)
    posterior = Posterior(queries, candidates, lambda_, n, first_prompt, target_mask)
    state = method.start(posterior, seed)
    batch, num_candidates = posterior.batch_size, posterior.num_candidates
    device = queries.device

    picked = torch.zeros(batch, num_candidates, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    picks_per_step, variances_per_step = [], []
    for _ in range(n):
        scores = method.scores(posterior, state)
        if method.copies_score_alike:
            scores = scores.gather(1, posterior.copies)
        if forbid_repeats:
            scores = scores.masked_fill(picked, float("-inf"))
        picks = scores.max(dim=1).indices  # the first maximum: lowest index wins ties
        column = posterior.observe(picks)
        state = method.update(posterior, state, picks, column)
        if forbid_repeats:
            picked[rows, picks] = True
        picks_per_step.append(picks)
        variances_per_step.append(posterior.variances.clone())
    indices = torch.stack(picks_per_step, dim=1)
    variances = torch.stack(variances_per_step, dim=1).clamp_min_(0.0)  # round-off below 0
    return indices, variances, posterior.prior_variances
