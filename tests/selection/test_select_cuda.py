"""On a CUDA device, selection runs there and gives the CPU's picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selection_helpers import unit

import siftlm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("method", siftlm.available_methods())
def test_cuda_matches_cpu(method: str) -> None:
    rng = np.random.default_rng(13)
    queries = unit(rng.standard_normal((8, 64)))
    candidates = unit(rng.standard_normal((8, 50, 64)))
    candidates[:, 9] = candidates[:, 4]
    cpu = siftlm.select(queries, candidates, 20, method=method, alpha=0.55)
    cuda = siftlm.select(
        torch.from_numpy(queries).cuda(),
        torch.from_numpy(candidates).cuda(),
        20,
        method=method,
        alpha=0.55,
    )
    assert isinstance(cuda.indices, np.ndarray)
    np.testing.assert_array_equal(cuda.indices, cpu.indices)
    np.testing.assert_array_equal(cuda.steps, cpu.steps)
    np.testing.assert_allclose(cuda.variances, cpu.variances, rtol=1e-9, atol=1e-12)
