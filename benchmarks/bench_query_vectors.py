"""Selection for one query vector against one per chunk (``query_vectors``), on the same
documents, interleaved: targets per document, seconds per stage (embed, search, select),
and how much the two selections share. No training: only ``select_for_prompt``.

    OMP_NUM_THREADS=1 python benchmarks/bench_query_vectors.py --split validation \\
        --docs-per-domain 1 --domains changelogs legal --store stores/minipile-all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from siftlm.bench import BenchConfig
from siftlm.bench.runner import pick_documents
from siftlm.defaults import open_store
from siftlm.models import load_tokenizer
from siftlm.training import TTTConfig
from siftlm.training.adaptation import select_for_prompt


@contextlib.contextmanager
def stage(timings, name):
    start = time.perf_counter()
    yield
    setattr(timings, name, getattr(timings, name) + time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--domains", nargs="+", default=None)
    parser.add_argument("--docs-per-domain", type=int, default=1)
    parser.add_argument("--store", default=None)
    parser.add_argument("--model", default="house-small", help="whose tokenizer cuts the query")
    parser.add_argument("--method", default="sift")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per mode")
    args = parser.parse_args()
    documents = pick_documents(
        BenchConfig(split=args.split, domains=args.domains, docs_per_domain=args.docs_per_domain)
    )
    store, tokenizer = open_store(args.store), load_tokenizer(args.model)
    configs = {q: TTTConfig(method=args.method, query_vectors=q) for q in ("one", "chunks")}
    for document in documents:
        row: dict = {"doc_id": document.id, "tokens": len(tokenizer.encode(document.text))}
        picks = {}
        for _ in range(args.repeats):
            for name, config in configs.items():  # interleaved
                adaptation = select_for_prompt(
                    document.text, store, tokenizer, config, exclude=None, stage=stage
                )
                picks[name] = [item.id for item in adaptation.memory]
                times = adaptation.timings
                for what in ("embed", "search", "select"):
                    row.setdefault(f"{name}_{what}_s", []).append(round(getattr(times, what), 4))
                row[f"{name}_targets"] = adaptation.n_targets or 1
                row[f"{name}_ratio"] = round(
                    adaptation.posterior_variance / adaptation.prior_variance, 4
                )
        row["shared_picks"] = len(set(picks["one"]) & set(picks["chunks"]))
        row["distinct_picks"] = {name: len(set(ids)) for name, ids in picks.items()}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
