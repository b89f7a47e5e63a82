"""Tables and curves over evaluated documents.

A result is anything with the fields of ``siftlm.training.DocumentResult`` that are used
here: ``doc_id``, ``domain``, ``nll_nats``, ``n_bytes``, ``steps``, and where asked for
``curve``, ``prior_variance``, ``posterior_variance``.

Aggregates are ratios of sums (docs/method.md). Standard errors across prompts are by the
delta method, treating documents as the sampled units: for R = sum(y) / sum(x) with
per-document y_i (bits) and x_i (bytes),

    SE(R) = sqrt( sum_i (y_i - R x_i)^2 / (m (m - 1)) ) / mean(x),

m documents. "% of base" is P = sum(y_method) / sum(y_base) over the same documents
(same bytes), with the paired version of the same formula (x_i = bits under base), so
that the spread of document difficulty, shared by both, cancels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from siftlm.evaluation.bpb import LN2, bits_per_byte

ALL = "All"


class Estimate(NamedTuple):
    """A value and its standard error across prompts (NaN with fewer than 2)."""

    value: float
    se: float


def ratio_estimate(numerators: Sequence[float], denominators: Sequence[float]) -> Estimate:
    """sum(numerators) / sum(denominators) with its delta-method standard error."""
    y = np.asarray(numerators, dtype=np.float64)
    x = np.asarray(denominators, dtype=np.float64)
    if len(y) == 0 or len(y) != len(x):
        raise ValueError("need equally many numerators and denominators, at least one")
    ratio = y.sum() / x.sum()
    m = len(y)
    if m < 2:
        return Estimate(float(ratio), math.nan)
    se = math.sqrt(((y - ratio * x) ** 2).sum() / (m * (m - 1))) / x.mean()
    return Estimate(float(ratio), float(se))


def _bits(results: Sequence[Any]) -> np.ndarray:
    return np.array([r.nll_nats / LN2 for r in results], dtype=np.float64)


def aggregate_bpb(results: Sequence[Any]) -> Estimate:
    """Bits per byte over ``results`` (ratio of sums) with its standard error."""
    return ratio_estimate(_bits(results), [r.n_bytes for r in results])


def _by_doc(results: Sequence[Any]) -> dict[Any, Any]:
    by_doc = {r.doc_id: r for r in results}
    if None in by_doc or len(by_doc) != len(results):
        raise ValueError("pairing results needs a distinct doc_id on every result")
    return by_doc


def _paired(results: Sequence[Any], base: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``results`` and ``base`` in the same document order; both must cover the same
    documents (see ``common_documents``)."""
    mine, theirs = _by_doc(results), _by_doc(base)
    if mine.keys() != theirs.keys():
        missing = len(mine.keys() ^ theirs.keys())
        raise ValueError(
            f"{missing} documents are in only one of the two result sets; compare on "
            "common_documents(...)"
        )
    order = list(theirs)
    for doc_id in order:
        if mine[doc_id].n_bytes != theirs[doc_id].n_bytes:
            raise ValueError(f"document {doc_id!r} has different byte counts in the two sets")
    return [mine[d] for d in order], [theirs[d] for d in order]


def relative_to_base(results: Sequence[Any], base: Sequence[Any]) -> Estimate:
    """Bits per byte in % of the base model's on the same documents, paired SE."""
    mine, theirs = _paired(results, base)
    value, se = ratio_estimate(_bits(mine), _bits(theirs))
    return Estimate(100.0 * value, 100.0 * se)


def common_documents(results_by_method: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Each method's results restricted to the documents that every method has."""
    common = set.intersection(*({r.doc_id for r in rs} for rs in results_by_method.values()))
    return {m: [r for r in rs if r.doc_id in common] for m, rs in results_by_method.items()}


@dataclass(frozen=True)
class Cell:
    """One method on one domain: bpb, % of base (None for the base itself), steps."""

    bpb: Estimate
    percent: Estimate | None
    mean_steps: float
    n_docs: int


@dataclass(frozen=True)
class DomainTable:
    """Per-domain bpb of each method, the aggregate over all domains last (``ALL``)."""

    methods: tuple[str, ...]
    domains: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]  # (domain, method) -> cell
    base: str | None

    def to_markdown(self, digits: int = 3) -> str:
        """Rows: domains then "All"; a cell "bpb (% of base ± SE)"; last row: mean steps."""
        header = ["domain", "docs", *self.methods]
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for domain in self.domains:
            cells = [self.cells[domain, method] for method in self.methods]
            row = [f"**{domain}**" if domain == ALL else domain, str(cells[0].n_docs)]
            for cell in cells:
                text = f"{cell.bpb.value:.{digits}f}"
                if cell.percent is not None:
                    text += f" ({cell.percent.value:.1f}% ± {_fmt(cell.percent.se)})"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
        steps = [f"{self.cells[ALL, method].mean_steps:.1f}" for method in self.methods]
        lines.append("| steps per prompt | | " + " | ".join(steps) + " |")
        return "\n".join(lines)


def _fmt(se: float) -> str:
    return "n/a" if math.isnan(se) else f"{se:.1f}"


def _in_domain(results: Sequence[Any], domain: str) -> list[Any]:
    return list(results) if domain == ALL else [r for r in results if r.domain == domain]


def domain_table(
    results_by_method: Mapping[str, Sequence[Any]], base: str | None = "base"
) -> DomainTable:
    """The per-domain table of ``results_by_method`` (method name -> results).

    With ``base`` among the methods, every cell also has its % of base, paired on the
    same documents (so every method must cover the base's documents).
    """
    if not results_by_method:
        raise ValueError("no results to tabulate")
    if base is not None and base not in results_by_method:
        base = None
    methods = tuple(results_by_method)
    domains = sorted({r.domain for rs in results_by_method.values() for r in rs} - {None})
    cells: dict[tuple[str, str], Cell] = {}
    for domain in [*domains, ALL]:
        for method, results in results_by_method.items():
            chosen = _in_domain(results, domain)
            if not chosen:
                raise ValueError(f"method {method!r} has no result in domain {domain!r}")
            percent = None
            if base is not None and method != base:
                percent = relative_to_base(chosen, _in_domain(results_by_method[base], domain))
            cells[domain, method] = Cell(
                bpb=aggregate_bpb(chosen),
                percent=percent,
                mean_steps=float(np.mean([r.steps for r in chosen])),
                n_docs=len(chosen),
            )
    return DomainTable(methods, (*domains, ALL), cells, base)


class Curve(NamedTuple):
    """Aggregate bits per byte (``bpb``) after ``steps`` gradient steps, both shape (P,)."""

    steps: np.ndarray
    bpb: np.ndarray


def learning_curve(results: Sequence[Any]) -> Curve:
    """Aggregate bpb (ratio of sums) at every step that some document's curve recorded.

    Each result has ``curve`` (NLL in nats) at ``curve_steps``. A document counts at
    step s with its value at its last recorded step <= s, so a curve that ends earlier
    (fewer steps, e.g. adaptive SIFT) holds its last value, and every point covers the
    same documents.
    """
    if not results or any(not r.curve for r in results):
        raise ValueError("every result needs a curve (evaluate(..., curve=True))")
    paired = []
    for r in results:
        steps = np.asarray(r.curve_steps if r.curve_steps is not None else range(len(r.curve)))
        if steps[0] != 0 or np.any(np.diff(steps) <= 0) or len(steps) != len(r.curve):
            raise ValueError(f"document {r.doc_id}: curve steps must rise from 0")
        paired.append((steps, np.asarray(r.curve, dtype=np.float64)))
    grid = np.unique(np.concatenate([steps for steps, _ in paired]))
    total = np.zeros(len(grid))
    for steps, values in paired:
        total += values[np.searchsorted(steps, grid, side="right") - 1]
    n_bytes = sum(r.n_bytes for r in results)
    return Curve(grid, total / (LN2 * n_bytes))


class UncertaintyGain(NamedTuple):
    """Per prompt: the predicted reduction of the surrogate's variance (prior minus
    posterior) and the realised gain (base bpb minus the method's), in base order."""

    doc_ids: list[Any]
    reduction: np.ndarray
    gain: np.ndarray


def uncertainty_gain(results: Sequence[Any], base: Sequence[Any]) -> UncertaintyGain:
    mine, theirs = _paired(results, base)
    if any(r.prior_variance is None for r in mine):
        raise ValueError("the results have no variances (the base method selects nothing)")
    bpb = [bits_per_byte(r.nll_nats, r.n_bytes) for r in mine]
    base_bpb = [bits_per_byte(r.nll_nats, r.n_bytes) for r in theirs]
    return UncertaintyGain(
        doc_ids=[r.doc_id for r in theirs],
        reduction=np.array([r.prior_variance - r.posterior_variance for r in mine]),
        gain=np.array(base_bpb) - np.array(bpb),
    )


class Redundancy(NamedTuple):
    """Per prompt, how redundant a method's training sequences were; each shape (P,).

    For the picks x_1..x_n of a prompt (its ``selected_ids``, one per gradient step) with
    unit embeddings φ(x_i): ``distinct`` = |{x_i}| / n; ``mean_cosine`` = the mean of
    φ(x_i)ᵀφ(x_j) over the n(n-1)/2 pairs i < j (NaN for n < 2), a sequence picked again
    included; ``near_copies`` = the number of those pairs of two *different* stored
    sequences with cosine >= the threshold (duplicates in the datastore).
    """

    doc_ids: list[Any]
    distinct: np.ndarray
    mean_cosine: np.ndarray
    near_copies: np.ndarray


def redundancy(
    results: Sequence[Any], embeddings: np.ndarray, threshold: float = 0.98
) -> Redundancy:
    """The :class:`Redundancy` of each result's picks; ``embeddings`` (N, d) are the
    datastore's unit vectors, indexed by ``selected_ids``."""
    n_stored = len(embeddings)
    distinct, mean_cosine, near_copies = [], [], []
    for r in results:
        ids = np.asarray(r.selected_ids, dtype=np.int64)
        outside = ids[(ids < 0) | (ids >= n_stored)]
        if len(outside):
            raise ValueError(
                f"document {r.doc_id}: selected id {int(outside[0])} is not in a store of "
                f"{n_stored} sequences (another store than the run's?)"
            )
        n = len(ids)
        distinct.append(len(set(ids.tolist())) / n if n else math.nan)
        if n < 2:
            mean_cosine.append(math.nan)
            near_copies.append(0)
            continue
        vectors = np.asarray(embeddings[ids], dtype=np.float32)
        upper = np.triu_indices(n, k=1)
        pairs = (vectors @ vectors.T)[upper]
        different = ids[upper[0]] != ids[upper[1]]
        mean_cosine.append(float(pairs.mean()))
        near_copies.append(int((pairs[different] >= threshold).sum()))
    return Redundancy(
        doc_ids=[r.doc_id for r in results],
        distinct=np.array(distinct, dtype=np.float64),
        mean_cosine=np.array(mean_cosine, dtype=np.float64),
        near_copies=np.array(near_copies, dtype=np.int64),
    )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(Pearson, Spearman) correlation of x and y (NaN where a side is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("correlation needs two equally long sequences of 2+ values")

    def pearson(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        denominator = math.sqrt((a * a).sum() * (b * b).sum())
        return float((a * b).sum() / denominator) if denominator > 0 else math.nan

    return pearson(x, y), pearson(_ranks(x), _ranks(y))


def time_shares(results: Sequence[Any]) -> dict[str, float]:
    """Each stage's share of the total time over ``results`` (their ``timings``), plus
    "overhead" (``Timings.overhead``: search + select + restore, what test-time training
    adds besides the training itself)."""
    totals: dict[str, float] = {}
    for result in results:
        for stage, seconds in result.timings.to_dict().items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    total = sum(totals.values())
    if total <= 0:
        raise ValueError("no time recorded")
    shares = {stage: seconds / total for stage, seconds in totals.items()}
    shares["overhead"] = sum(r.timings.overhead for r in results) / total
    return shares
