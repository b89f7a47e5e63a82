"""Selection: which of each prompt's candidate sequences to fine-tune on.

    from siftlm import select
    result = select(queries, candidates, n=50, method="sift", lambda_=0.01)
    result.indices   # (B, n) int64 positions on the candidate axis

Methods (`available_methods()`): "sift" (greedy minimum posterior variance), "nn",
"nn-f", "us", "random", "mmr", "hull". Each is a scoring rule (`registry.Method`) run by
one greedy loop (`greedy`) over one shared posterior (`posterior.Posterior`); hull plans
its picks at the start and replays them through that loop. One prompt on the CPU runs the
same loop on numpy views (`single`), with bitwise the same results.
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
from siftlm.selection.hull import HullFT
from siftlm.selection.registry import Method, available_methods, get_method, register
from siftlm.selection.stopping import adaptive_steps

__all__ = [
    "MMR",
    "HullFT",
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
