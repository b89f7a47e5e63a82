"""Time siftlm's SIFT against the reference implementation (activeft 0.1.1) on identical inputs.

    python benchmarks/bench_select.py            # B=64 prompts, K=200, n=50, d=384, λ=0.01

Each prompt has its own K candidates: unit-norm vectors scattered around the prompt's
embedding at random distances (cosines ~0.1-0.9, like retrieved neighbours), float32.
activeft runs as in its docs: a `Retriever` over a `faiss.IndexFlatIP` holding the prompt's
candidates (built outside the timing), `also_query_opposite=False`, `llambda=λ`, on the CPU,
one prompt per call. siftlm runs all prompts in one `select` call, and, for the latency a
test-time trainer sees, one prompt per call. Times are medians over repeats; both use
torch's default thread count. Picks must be identical (no duplicate candidates here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch


def make_inputs(prompts: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((prompts, d))
    queries /= np.linalg.norm(queries, axis=-1, keepdims=True)
    spread = rng.uniform(0.5, 3.0, size=(prompts, k, 1))  # distance from the prompt
    candidates = queries[:, None, :] + spread * rng.standard_normal((prompts, k, d)) / np.sqrt(d)
    candidates /= np.linalg.norm(candidates, axis=-1, keepdims=True)
    return queries.astype(np.float32), candidates.astype(np.float32)


def run_activeft(queries, candidates, n, lambda_):
    import faiss
    from activeft.sift import Retriever

    indices, variances, seconds = [], [], []
    for query, cands in zip(queries, candidates, strict=True):
        index = faiss.IndexFlatIP(cands.shape[1])
        index.add(cands)
        retriever = Retriever(
            index, llambda=lambda_, also_query_opposite=False, device=torch.device("cpu")
        )
        torch.manual_seed(0)
        start = time.perf_counter()
        values, picks, _, _ = retriever.search(query[None], N=n, K=None)
        seconds.append(time.perf_counter() - start)
        indices.append(np.asarray(picks))
        variances.append(-np.asarray(values, dtype=np.float64))
    return np.stack(indices), np.stack(variances), seconds


def run_siftlm(queries, candidates, n, lambda_, repeats):
    import siftlm

    siftlm.select(queries[:2], candidates[:2], n, lambda_=lambda_)  # warm-up
    batched = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = siftlm.select(queries, candidates, n, lambda_=lambda_)
        batched.append(time.perf_counter() - start)
    single = []
    for _ in range(repeats):
        start = time.perf_counter()
        for query, cands in zip(queries, candidates, strict=True):
            siftlm.select(query, cands, n, lambda_=lambda_)
        single.append(time.perf_counter() - start)
    return result, statistics.median(batched), statistics.median(single)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=5, help="siftlm timing repeats")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # activeft on numpy 2

    queries, candidates = make_inputs(args.prompts, args.k, args.d, args.seed)
    B = args.prompts
    print(
        f"B={B} prompts, K={args.k}, n={args.n}, d={args.d}, λ={args.lambda_:g}; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    ref_indices, ref_variances, ref_seconds = run_activeft(
        queries, candidates, args.n, args.lambda_
    )
    result, batched, single = run_siftlm(queries, candidates, args.n, args.lambda_, args.repeats)

    ref_ms = 1e3 * statistics.median(ref_seconds)
    rows = [
        ("activeft 0.1.1 (Retriever, one prompt per call)", ref_ms),
        (f"siftlm.select, {B} prompts per call", 1e3 * batched / B),
        ("siftlm.select, one prompt per call", 1e3 * single / B),
    ]
    print()
    print("| implementation | ms per prompt | speed-up vs activeft |")
    print("| --- | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} | {ref_ms / ms:.0f}× |")
    same = (result.indices == ref_indices).all(axis=1)
    gap = np.abs(result.variances - ref_variances).max()
    print()
    print(
        f"picks identical to activeft: {int(same.sum())}/{B} prompts "
        f"({'all agree' if same.all() else 'DISAGREE'}); "
        f"max |σ² difference| {gap:.1e} (activeft computes in float32)"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
