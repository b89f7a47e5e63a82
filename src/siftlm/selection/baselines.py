"""Baselines of the paper's table, plus MMR, the diversity heuristic of RAG stacks.

All read the same `Posterior`, so their `Selection.variances` are comparable with SIFT's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from siftlm.selection.posterior import Posterior
from siftlm.selection.registry import Method, register


@register
class NearestNeighbours(Method):
    """NN: the candidates with the largest inner product k(x*, x), each once.

    A multi-vector prompt ranks by the inner product with the mean of its targets."""

    name = "nn"
    repeats = False
    posterior_only = True

    def scores(self, posterior: Posterior, state: Any) -> torch.Tensor:
        return posterior.prior_cross


@register
class NearestNeighbourFailure(NearestNeighbours):
    """NN-F: the nearest candidate repeated n times (NN under information duplication):
    NN's scores with repeats allowed."""

    name = "nn-f"
    repeats = True


@register
class UncertaintySampling(Method):
    """US: greedily the candidate with the largest posterior variance k_t(x, x) of its own.

    Blind to the prompt: only the candidates' own uncertainty, conditioned on the picks so
    far, counts (so it spreads out over the candidate set). Ties, e.g. between unit-norm
    candidates at the first step, go to the lowest index.
    """

    name = "us"
    posterior_only = True

    def scores(self, posterior: Posterior, state: Any) -> torch.Tensor:
        return posterior.candidate_variances


@register
class RandomSelection(Method):
    """Random: a uniformly random order of the candidates, each once, seeded by `seed`.

    Prompt i of a call gets row i of one CPU draw of shape (prompts, K), so the picks
    depend only on the seed and the prompt's position, not on the device or chunking.
    """

    name = "random"
    repeats = False
    copies_score_alike = False

    def start(self, posterior: Posterior, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        prompts = posterior.prompts.cpu()
        shape = (int(prompts[-1]) + 1, posterior.num_candidates)
        keys = torch.rand(shape, generator=generator, dtype=torch.float64)[prompts]
        return keys.to(posterior.gram.device)

    def scores(self, posterior: Posterior, state: torch.Tensor) -> torch.Tensor:
        return state


@register
@dataclass
class MMR(Method):
    """Maximal marginal relevance (Carbonell & Goldstein, 1998), each candidate once:

        x_{t+1} = argmax_x  relevance · cos(x*, x) − (1 − relevance) · max_{s ≤ t} cos(x, x_s)

    The first pick is the most similar candidate. Zero vectors have cosine 0 with everything.
    `relevance = 0.5` is the usual default (e.g. LangChain's `lambda_mult`).
    """

    relevance: float = 0.5
    name = "mmr"
    repeats = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.relevance <= 1.0:
            raise ValueError(f"MMR relevance must lie in [0, 1], got {self.relevance}")

    def start(self, posterior: Posterior, seed: int) -> dict[str, torch.Tensor | None]:
        norms = posterior.prior_candidate_variances.sqrt()
        query_norms = posterior.prompt_norms.unsqueeze(1)
        similarity = _safe_divide(posterior.prior_cross, norms * query_norms)
        return {"norms": norms, "similarity": similarity, "redundancy": None}

    def scores(self, posterior: Posterior, state: dict[str, Any]) -> torch.Tensor:
        scores = self.relevance * state["similarity"]
        if state["redundancy"] is not None:
            scores = scores - (1.0 - self.relevance) * state["redundancy"]
        return scores

    def update(
        self, posterior: Posterior, state: dict[str, Any], picks: torch.Tensor, column: torch.Tensor
    ) -> dict[str, Any]:
        norms = state["norms"]
        picked_norms = norms.gather(1, picks.unsqueeze(1))  # (B, 1)
        similarity = _safe_divide(column, norms * picked_norms)  # cos(x, x_pick), (B, K)
        redundancy = state["redundancy"]
        redundancy = similarity if redundancy is None else torch.maximum(redundancy, similarity)
        return {**state, "redundancy": redundancy}


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, and 0 where the denominator is 0 (zero-norm embeddings)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)
