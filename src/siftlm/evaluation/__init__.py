"""Evaluation: bits per byte with rolling windows, and tables over documents."""

from siftlm.evaluation.bpb import (
    LN2,
    TextScore,
    Window,
    bits_per_byte,
    prefix_token_id,
    rolling_windows,
    score_text,
    score_tokens,
)
from siftlm.evaluation.report import (
    Curve,
    DomainTable,
    Estimate,
    aggregate_bpb,
    common_documents,
    correlation,
    domain_table,
    learning_curve,
    relative_to_base,
    time_shares,
    uncertainty_gain,
)

__all__ = [
    "Curve",
    "DomainTable",
    "Estimate",
    "LN2",
    "TextScore",
    "Window",
    "aggregate_bpb",
    "bits_per_byte",
    "common_documents",
    "correlation",
    "domain_table",
    "learning_curve",
    "prefix_token_id",
    "relative_to_base",
    "rolling_windows",
    "score_text",
    "score_tokens",
    "time_shares",
    "uncertainty_gain",
]
