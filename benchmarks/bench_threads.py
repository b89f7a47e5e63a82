"""Seconds per prompt of the demo's test-time fine-tuning with 1 and with 2 torch threads.

    nice python benchmarks/bench_threads.py --prompts 3 --repeats 2

What a demo prompt costs: house-small, n = 20 selected sequences (one gradient step
each), then the document scored. The datastore is a list of memory-split chunks with a
hashed n-gram embedder (``siftlm.testing``), so that no store build or embedder load is
timed: the selection takes well under 1 % of a prompt, the gradient steps and the
scoring the rest. Thread counts alternate prompt by prompt (1, 2, 1, 2, ...) so that both
run under the same machine load; the script prints the 1-minute load average before and
after, and the median seconds per prompt of each. Bounded: prompts x repeats x 2 runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from siftlm.data import load_corpus
    from siftlm.models import load_model
    from siftlm.testing import ngram_embedder
    from siftlm.training import ListMemory, TestTimeTrainer, TTTConfig

    model, tokenizer = load_model("house-small")
    memory_docs = load_corpus("memory")[::40]
    texts = [
        d.text[i : i + 1000] for d in memory_docs for i in range(0, min(len(d.text), 3000), 1000)
    ]
    memory = ListMemory(texts, ngram_embedder(dim=64))
    trainer = TestTimeTrainer(
        model, tokenizer, memory, TTTConfig(method="sift", n=args.n, k=100, lambda_=0.1, lr=1e-3)
    )
    documents = load_corpus("validation")[:: max(1, 350 // args.prompts)][: args.prompts]
    seconds: dict[int, list[float]] = {t: [] for t in args.threads}
    print(
        f"load before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs, torch {torch.__version__})"
    )
    for _ in range(args.repeats):
        for document in documents:
            for threads in args.threads:
                torch.set_num_threads(threads)
                start = time.perf_counter()
                trainer.evaluate(document.text[:2000], doc_id=document.id, domain=document.domain)
                seconds[threads].append(time.perf_counter() - start)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    for threads, values in seconds.items():
        print(
            f"{threads} thread(s): median {statistics.median(values):.2f} s/prompt "
            f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} prompts)"
        )


if __name__ == "__main__":
    main()
