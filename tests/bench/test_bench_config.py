"""BenchConfig: validation and the derived per-method settings."""

from __future__ import annotations

import pytest

from siftlm.bench import BenchConfig


def test_sparse_learning_curves_keep_the_first_ten_steps():
    config = BenchConfig(n=50, curve_every=5, methods=("base", "nn", "sift"))
    assert config.curve_steps("sift") == [*range(11), 15, 20, 25, 30, 35, 40, 45, 50]
    assert config.curve_steps("base") is False
    assert BenchConfig(methods=("nn",)).curve_steps("nn") is True
    with pytest.raises(ValueError, match="curve_every must be >= 1"):
        BenchConfig(curve_every=0)
