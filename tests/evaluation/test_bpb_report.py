"""Aggregates (ratio of sums, standard errors), per-domain tables, curves."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from siftlm.evaluation import (
    aggregate_bpb,
    common_documents,
    correlation,
    domain_table,
    learning_curve,
    redundancy,
    relative_to_base,
    time_shares,
    uncertainty_gain,
)
from siftlm.evaluation.report import ALL, ratio_estimate
from siftlm.training import DocumentResult, Timings

LN2 = math.log(2)


def doc(doc_id, domain, bits, n_bytes, steps=0, curve_bits=None, variances=(None, None)):
    """A result with ``bits`` in total (stored as nats)."""
    return DocumentResult(
        doc_id=doc_id,
        domain=domain,
        method="m",
        nll_nats=bits * LN2,
        n_bytes=n_bytes,
        n_tokens=1,
        steps=steps,
        n_selected=steps,
        n_context=0,
        prior_variance=variances[0],
        posterior_variance=variances[1],
        selected_ids=(),
        curve=tuple(b * LN2 for b in curve_bits) if curve_bits else None,
    )


BASE = [doc("a", "code", 10, 10), doc("b", "code", 30, 20), doc("c", "law", 12, 10)]
SIFT = [
    doc("a", "code", 5, 10, steps=2, variances=(1.0, 0.2)),
    doc("b", "code", 24, 20, steps=2, variances=(1.0, 0.5)),
    doc("c", "law", 12, 10, steps=1, variances=(1.0, 0.9)),
]


def test_bpb_is_a_ratio_of_sums_not_a_mean():
    estimate = aggregate_bpb(BASE)
    assert estimate.value == pytest.approx((10 + 30 + 12) / (10 + 20 + 10))
    assert estimate.value != pytest.approx(np.mean([1.0, 1.5, 1.2]))


def test_delta_method_standard_error_by_hand():
    y, x = [10.0, 30.0, 12.0], [10.0, 20.0, 10.0]
    ratio = sum(y) / sum(x)
    residuals = [yi - ratio * xi for yi, xi in zip(y, x, strict=True)]
    expected = math.sqrt(sum(r * r for r in residuals) / (3 * 2)) / (sum(x) / 3)
    assert ratio_estimate(y, x) == pytest.approx((ratio, expected))
    assert math.isnan(ratio_estimate([1.0], [2.0]).se)
    # identical per-document ratios: no spread, no error
    assert ratio_estimate([2.0, 4.0], [1.0, 2.0]).se == 0.0


def test_relative_to_base_is_paired():
    estimate = relative_to_base(SIFT, BASE)
    assert estimate.value == pytest.approx(100 * (5 + 24 + 12) / (10 + 30 + 12))
    # order does not matter, documents are matched by id
    assert relative_to_base(SIFT[::-1], BASE) == pytest.approx(estimate)
    # a uniform improvement has no paired error, however different the documents are
    halved = [doc(r.doc_id, r.domain, r.nll_nats / LN2 / 2, r.n_bytes) for r in BASE]
    assert relative_to_base(halved, BASE) == pytest.approx((50.0, 0.0))


def test_pairing_needs_the_same_documents():
    with pytest.raises(ValueError, match="only one of the two"):
        relative_to_base(SIFT[:2], BASE)
    with pytest.raises(ValueError, match="distinct doc_id"):
        relative_to_base([SIFT[0], SIFT[0], SIFT[2]], BASE)
    common = common_documents({"base": BASE, "sift": SIFT[:2]})
    assert [r.doc_id for r in common["base"]] == ["a", "b"]


def test_domain_table():
    table = domain_table({"base": BASE, "sift": SIFT})
    assert table.domains == ("code", "law", ALL)
    code = table.cells["code", "sift"]
    assert code.bpb.value == pytest.approx(29 / 30)
    assert code.percent.value == pytest.approx(100 * 29 / 40)
    assert code.mean_steps == 2.0 and code.n_docs == 2
    assert table.cells[ALL, "base"].percent is None
    assert table.cells["law", "sift"].percent.value == pytest.approx(100.0)
    markdown = table.to_markdown()
    lines = markdown.splitlines()
    assert lines[0] == "| domain | docs | base | sift |"
    assert "| **All** | 3 | 1.300 | 1.025 (78.8% ± " in markdown
    assert lines[-1] == "| steps per prompt | | 0.0 | 1.7 |"
    assert "n/a" in markdown  # one document in "law": no standard error


def test_learning_curve_holds_the_last_value_of_shorter_curves():
    results = [
        doc("a", "code", 4, 10, steps=2, curve_bits=[10, 6, 4]),
        doc("b", "code", 8, 10, steps=0, curve_bits=[8]),
    ]
    curve = learning_curve(results)
    assert curve.steps.tolist() == [0, 1, 2]
    assert curve.bpb == pytest.approx([18 / 20, 14 / 20, 12 / 20])
    with pytest.raises(ValueError, match="curve"):
        learning_curve(BASE)


def test_learning_curve_on_sparse_steps_holds_each_document_s_last_point():
    results = [
        dataclasses.replace(
            doc("a", "code", 4, 10, steps=10, curve_bits=[10, 6, 4]), curve_steps=(0, 5, 10)
        ),
        dataclasses.replace(
            doc("b", "code", 8, 10, steps=3, curve_bits=[8, 7]), curve_steps=(0, 3)
        ),
    ]
    curve = learning_curve(results)
    assert curve.steps.tolist() == [0, 3, 5, 10]
    assert curve.bpb == pytest.approx([18 / 20, 17 / 20, 13 / 20, 11 / 20])
    broken = dataclasses.replace(results[0], curve_steps=(0, 10, 5))
    with pytest.raises(ValueError, match="rise from 0"):
        learning_curve([broken])


def test_uncertainty_gain_and_correlation():
    pairs = uncertainty_gain(SIFT, BASE)
    assert pairs.doc_ids == ["a", "b", "c"]
    assert pairs.reduction == pytest.approx([0.8, 0.5, 0.1])
    assert pairs.gain == pytest.approx([0.5, 0.3, 0.0])
    pearson, spearman = correlation(pairs.reduction, pairs.gain)
    assert spearman == pytest.approx(1.0) and 0.9 < pearson <= 1.0
    assert correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx((-1.0, -1.0))
    assert correlation([1, 1, 2], [1, 2, 3])[1] == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(correlation([1, 1], [1, 2])[0])
    with pytest.raises(ValueError, match="no variances"):
        uncertainty_gain(BASE, BASE)


def test_time_shares():
    results = [
        dataclasses.replace(SIFT[0], timings=Timings(1, 1, 1, 5, 1, 1)),
        dataclasses.replace(SIFT[1], timings=Timings(0, 1, 1, 5, 2, 0)),
    ]
    shares = time_shares(results)
    assert shares["train"] == pytest.approx(10 / 19)
    assert shares["overhead"] == pytest.approx((3 + 2) / 19)
    assert sum(v for k, v in shares.items() if k != "overhead") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no time"):
        time_shares(BASE)


def test_redundancy_of_picks_by_hand():
    # ids 0 and 1 are near copies (cosine 1), 2 is orthogonal to both, 3 is another vector
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float16)
    picks = [
        dataclasses.replace(SIFT[0], selected_ids=(0, 1, 2, 0)),
        dataclasses.replace(SIFT[1], selected_ids=(3,)),
        dataclasses.replace(SIFT[2], selected_ids=(2, 3)),
    ]
    found = redundancy(picks, vectors, threshold=0.98)
    assert found.doc_ids == ["a", "b", "c"]
    assert found.distinct[0] == pytest.approx(3 / 4)
    # pairs (0,1) 1, (0,2) 0, (0,0) 1 (again), (1,2) 0, (1,0) 1, (2,0) 0
    assert found.mean_cosine[0] == pytest.approx(3 / 6)
    assert found.near_copies[0] == 2  # (0,1) and (1,0): different sequences, cosine 1
    assert math.isnan(found.mean_cosine[1]) and found.near_copies[1] == 0
    assert found.mean_cosine[2] == pytest.approx(0.8, abs=1e-3) and found.near_copies[2] == 0
    with pytest.raises(ValueError, match="selected id 7 is not in a store of 4"):
        redundancy([dataclasses.replace(SIFT[0], selected_ids=(0, 7))], vectors)
