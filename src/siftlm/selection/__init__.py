"""Selection: which of each prompt's candidate sequences to fine-tune on.

    from siftlm import select
    result = select(queries, candidates, n=50, method="sift", lambda_=0.01)
    result.indices   # (B, n) int64 positions on the candidate axis

Methods (`available_methods()`): "sift" (greedy minimum posterior variance), "nn",
"nn-f", "us", "random", "mmr". Each is a scoring rule (`registry.Method`) run by one
greedy loop (`greedy`) over one shared posterior (`posterior.Posterior`).
"""

# Importing a method's module registers it; sift first, so that it leads `available_methods()`.
from siftlm.selection.sift import SIFT

# isort: split
from siftlm.selection.api import Selection, select
from siftlm.selection.baselines import (
    MMR,
    NearestNeighbourFailure,
    NearestNeighbours,
    RandomSelection,
    UncertaintySampling,
)
from siftlm.selection.registry import Method, available_methods, get_method, register
from siftlm.selection.stopping import adaptive_steps

__all__ = [
    "MMR",
    "SIFT",
    "Method",
    "NearestNeighbourFailure",
    "NearestNeighbours",
    "RandomSelection",
    "Selection",
    "UncertaintySampling",
    "adaptive_steps",
    "available_methods",
    "get_method",
    "register",
    "select",
]
