"""One prompt's selection: embed it, retrieve ``k`` candidates (without the excluded
ids), select ``n`` with ``siftlm.select``; and the record of what adapting did."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from siftlm.evaluation.bpb import encode
from siftlm.training.config import TTTConfig
from siftlm.training.memory import MemoryLike
from siftlm.training.results import MemoryItem, Timings
from siftlm.training.targets import embed_targets, retrieve


@dataclass
class Adaptation:
    """What ``adapt`` did for one prompt (``steps`` and ``timings`` fill in as it goes).

    ``memory`` and ``tokens``: the selected sequences in selection order (a sequence
    picked twice appears twice), with their token ids. Variances: per target (the mean
    over the ``n_targets`` targets of a multi-vector query; ``siftlm.training.targets``).
    """

    method: str
    memory: tuple[MemoryItem, ...] = ()
    tokens: list[list[int]] = field(default_factory=list)
    prior_variance: float | None = None
    posterior_variance: float | None = None
    variances: tuple[float, ...] = ()
    steps: int = 0
    gated: bool = False  # selected, but not trained on (``variance_gate``)
    kept_steps: int | None = None  # early stop: the steps whose weights were kept
    passes: int = 0  # forward and backward passes (fewer than steps with gradient reuse)
    n_targets: int | None = None  # query_vectors="chunks": the prompt's m target vectors
    timings: Timings = field(default_factory=Timings)


def _as_list(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def select_for_prompt(
    prompt: str,
    memory: MemoryLike,
    tokenizer,
    config: TTTConfig,
    *,
    exclude: Collection[int] | None,
    stage: Callable,
) -> Adaptation:
    """The selection for ``prompt`` under ``config`` (not "base"), as an ``Adaptation``
    with the selected sequences and their tokens; ``stage(timings, name)`` times a step."""
    from siftlm.selection import select

    adaptation = Adaptation(method=config.name)
    timings = adaptation.timings
    with stage(timings, "embed"):
        if config.query_vectors == "one":
            query = np.asarray(memory.embed([prompt]), dtype=np.float32)
        else:  # (m, d): one target per chunk of the prompt
            query = embed_targets(prompt, memory, tokenizer, config)
            adaptation.n_targets = len(query)
    with stage(timings, "search"):
        hits = retrieve(memory, query, config.k, exclude)
    with stage(timings, "select"):
        m = len(query)  # variances are reported per target: Σ_j σ²(q_j) / m
        selection = select(
            query[0] if m == 1 else query[None],
            np.asarray(hits.embeddings[0], dtype=np.float32),
            config.n,
            method=config.method,
            lambda_=config.lambda_,
            alpha=config.alpha,
            distinct=config.distinct,
            seed=config.seed,
        )
        indices, variances, prior, steps = _first_prompt(selection, batched=m > 1)
        n_used = int(steps)  # adaptive SIFT stops early
        positions = [int(i) for i in _as_list(indices)[:n_used]]
        adaptation.variances = tuple(float(v) / m for v in _as_list(variances)[:n_used])
    adaptation.memory = _items(hits, positions)
    adaptation.prior_variance = float(prior) / m
    adaptation.posterior_variance = (
        adaptation.variances[-1] if adaptation.variances else adaptation.prior_variance
    )
    # tokens for training, or for the context in context mode
    with stage(timings, "train" if config.trains else "evaluate"):
        adaptation.tokens = [encode(tokenizer, item.text) for item in adaptation.memory]
    return adaptation


def _first_prompt(selection, batched: bool) -> tuple:
    """(indices, variances, prior_variances, steps) of the first prompt of ``selection``
    (of its only prompt when not ``batched``)."""
    fields = (selection.indices, selection.variances, selection.prior_variances, selection.steps)
    return tuple(np.asarray(values[0] if batched else values) for values in fields)


def _items(hits, positions: list[int]) -> tuple[MemoryItem, ...]:
    """The selected candidates (positions in the first query's hits) as memory items."""
    ids, scores = _as_list(hits.ids[0]), _as_list(hits.scores[0])
    doc_ids = getattr(hits, "doc_ids", None)
    return tuple(
        MemoryItem(
            id=int(ids[p]),
            domain=hits.domains[0][p],
            score=float(scores[p]),
            text=hits.texts[0][p],
            doc_id=str(doc_ids[0][p]) if doc_ids is not None else None,
        )
        for p in positions
    )


def step_config(config: TTTConfig, adaptation: Adaptation) -> TTTConfig:
    """The configuration a prompt that trains runs its steps with: ``config`` with the
    learning rate ``config.training_lr`` gives for the selection's variances (``config``
    itself where that is ``config.lr``)."""
    lr = config.training_lr(adaptation.posterior_variance, adaptation.prior_variance)
    if lr is None:
        raise ValueError("variance_gate keeps this prompt from training: it has no steps")
    return config if lr == config.lr else dataclasses.replace(config, lr=lr)
