"""Adaptive stopping (adaptive SIFT).

With σ_t the prompt's posterior standard deviation after t picks (t counted from 1), a
prompt stops at the first t with

    σ_t > 1 / (α · t),

and keeps its picks 1..t (`Selection.steps = t`); if no t ≤ n qualifies it keeps all n.
The right-hand side shrinks like 1/t, so the rule ends fine-tuning once the uncertainty
stops falling about as fast as the compute spent on it grows: prompts whose uncertainty
the candidates do not reduce get few steps. The paper tried α ∈ {0.15, 0.55, 2.0}.

Source: the SIFT paper (arXiv 2410.08020, the compute-proportional section). activeft
0.1.1, the reference for the picks, has no stopping rule; activeft's later code drops
every step t at which the condition holds, where this rule keeps the first such step and
stops after it (docs/method.md, section 3, says why and how to get theirs).
"""

from __future__ import annotations

import torch


def adaptive_steps(variances: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B,) int64 number of picks kept per prompt.

    Args:
        variances: (B, n) posterior variance σ²_t after picks t = 1..n.
        alpha: α > 0.
    """
    n = variances.shape[1]
    t = torch.arange(1, n + 1, dtype=variances.dtype, device=variances.device)
    exceeds = variances.clamp_min(0.0).sqrt() > 1.0 / (alpha * t)
    first = exceeds.to(torch.uint8).argmax(dim=1) + 1
    return torch.where(exceeds.any(dim=1), first, torch.full_like(first, n))
