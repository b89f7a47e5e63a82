"""The benchmark: test-time fine-tuning methods compared by bits per byte on a corpus split.

from siftlm.bench import BenchConfig, run_bench, make_report
out = run_bench(BenchConfig(model="house-small", split="validation", docs_per_domain=5))
print(make_report(out))
"""

from siftlm.bench.config import ALL_METHODS, BenchConfig
from siftlm.bench.report import make_report
from siftlm.bench.results import ResultsFile, load_results
from siftlm.bench.runner import open_store, pick_documents, run_bench

__all__ = [
    "ALL_METHODS",
    "BenchConfig",
    "ResultsFile",
    "load_results",
    "make_report",
    "open_store",
    "pick_documents",
    "run_bench",
]
