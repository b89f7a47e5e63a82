"""Datastore indexes at scale: build time, search latency at K = 200, recall@200, memory, disk.

The vectors are SYNTHETIC: unit vectors of dimension 384 (all-MiniLM-L6-v2's) with
cluster structure, ``x = normalise(c + g)`` with ``c`` one of 1,000 random unit centres
(chosen uniformly) and ``g ~ N(0, I/384)``, so that a vector's cosine to its centre is
about 0.7 and to another member of its cluster about 0.5, as for neighbouring sentences.
Queries are 100 fresh draws from the same mixture. They are generated in blocks of
100,000 from fixed seeds, so no row ever holds more than one copy of the data.

Each (size, index) row runs in its own child process (so that its peak memory is its
own) and writes ``OUT/<size>-<index>.json``; a rerun skips the rows already there (the
benchmark is resumable), then writes ``OUT/table.md`` from all rows. Per row:

- build: training on the sample siftlm uses (:mod:`siftlm.datastore.factory`) plus
  adding all vectors, Faiss calls only (data generation excluded);
- recall@200 of the 100 queries against exact search (the Flat row's results, saved as
  ``OUT/truth-<size>.npy``, or a blocked brute force if that row is missing), for each
  value of the search knob (``nprobe`` / ``efSearch``) doubled from its start until
  recall >= 0.95 or the knob's ceiling; the table shows the first value that reaches it
  (or the last);
- latency: median over 20 queries searched one at a time (as a prompt is), K = 200;
- peak RSS of the row's process, and the index's size written to disk.

Times are CPU seconds of the row's process (``time.process_time``), with Faiss on one
thread: on a shared, loaded machine the wall clock measures the other jobs, while one
thread's CPU time is what the same work takes on an idle core (``--threads`` > 1 makes
them sums over threads, not latencies).

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_store_scale.py \\
        --sizes 100000 1000000 --indexes Flat HNSW32 IVF1024,PQ48
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DIM = 384
CENTRES = 1000
BLOCK = 100_000
QUERIES = 100
LATENCY_QUERIES = 20


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def centres(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0])
    return _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))


def draw(n: int, stream: list[int], seed: int) -> np.ndarray:
    """(n, DIM) float32 unit vectors of the mixture, from the random stream ``stream``."""
    rng = np.random.default_rng([seed, *stream])
    picks = rng.integers(0, CENTRES, size=n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
    return _unit(centres(seed)[picks] + noise)


def blocks(n: int, seed: int):
    """(start, block) over the n vectors of the data set, BLOCK rows at a time."""
    for start in range(0, n, BLOCK):
        yield start, draw(min(BLOCK, n - start), [1, start], seed)


def queries(seed: int) -> np.ndarray:
    return draw(QUERIES, [2], seed)


def exact_top_k(n: int, query: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(Q, k) ids of the exact top-k by inner product, by blocked brute force."""
    best_scores = np.full((len(query), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(query), 0), np.int64)
    for start, block in blocks(n, seed):
        scores = np.concatenate([best_scores, query @ block.T], axis=1)
        block_ids = np.broadcast_to(np.arange(start, start + len(block)), (len(query), len(block)))
        ids = np.concatenate([best_ids, block_ids], axis=1)
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, keep, 1)
        best_ids = np.take_along_axis(ids, keep, 1)
    return best_ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def latency_ms(index, query: np.ndarray, k: int) -> float:
    index.search(query[:1], k)  # warm-up
    times = []
    for row in query[:LATENCY_QUERIES]:
        clock = time.process_time()
        index.search(row[None, :], k)
        times.append(time.process_time() - clock)
    return 1000 * statistics.median(times)


def build(spec: str, n: int, seed: int):
    """(index, seconds in Faiss calls, training sample size)."""
    from siftlm.datastore.factory import new_index, train_index, training_size

    index = new_index(spec, DIM)
    seconds, size = 0.0, 0
    if not index.is_trained:
        size = training_size(index, n)
        rows = np.sort(np.random.default_rng([seed, 3]).choice(n, size=size, replace=False))
        sample = np.concatenate(
            [
                block[rows[(rows >= start) & (rows < start + len(block))] - start]
                for start, block in blocks(n, seed)
            ]
        )
        clock = time.process_time()
        train_index(index, sample, spec)
        seconds += time.process_time() - clock
        del sample
    for _, block in blocks(n, seed):
        clock = time.process_time()
        index.add(block)
        seconds += time.process_time() - clock
    return index, seconds, size


def run_row(n: int, spec: str, args: argparse.Namespace) -> dict:
    import faiss

    from siftlm.datastore.factory import search_knob, set_knob

    faiss.omp_set_num_threads(args.threads)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries
    out = Path(args.out)
    query = queries(args.seed)
    index, build_s, sample = build(spec, n, args.seed)
    truth_file = out / f"truth-{n}.npy"
    sweep = []
    knob = search_knob(index)
    value = None if knob is None else knob.value
    while True:
        clock = time.process_time()
        _, found = index.search(query, args.k)
        batch_s = time.process_time() - clock
        if spec == "Flat" and not truth_file.exists():
            np.save(truth_file, found)
        if not truth_file.exists():
            np.save(truth_file, exact_top_k(n, query, args.k, args.seed))
        point = {
            "knob": None if knob is None else knob.name,
            "value": value,
            "recall": round(recall(found, np.load(truth_file)), 4),
            "latency_ms": round(latency_ms(index, query, args.k), 3),
            "batch_ms_per_query": round(1000 * batch_s / len(query), 3),
        }
        sweep.append(point)
        print(f"  {n} {spec} {point}", file=sys.stderr, flush=True)
        if knob is None or point["recall"] >= args.target or value >= knob.ceiling:
            break
        value = min(knob.ceiling, value * 2)
        set_knob(index, value)
    chosen = next((p for p in sweep if p["recall"] >= args.target), sweep[-1])
    file = out / f"index-{os.getpid()}.faiss"
    faiss.write_index(index, str(file))
    disk = file.stat().st_size
    file.unlink()
    return {
        "size": n,
        "index": spec,
        "build_s": round(build_s, 2),
        "vectors_per_s": round(n / build_s, 1) if build_s else None,
        "training_sample": sample,
        **{key: chosen[key] for key in ("knob", "value", "recall", "latency_ms")},
        "sweep": sweep,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "baseline_rss_mb": round(baseline_mb),
        "index_disk_mb": round(disk / 2**20, 1),
        "k": args.k,
        "threads": args.threads,
        "conditions": {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "load_before": os.getloadavg()[0],
            "faiss": faiss.__version__,
            "data": f"synthetic clustered unit vectors, d={DIM}, {CENTRES} centres, seed {args.seed}",
        },
    }


def row_file(out: Path, n: int, spec: str) -> Path:
    return out / f"{n}-{spec.replace(',', '_')}.json"


def table(out: Path) -> str:
    rows = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    rows.sort(key=lambda r: (r["size"], r["index"]))
    lines = [
        "| vectors | index | build (CPU s) | build rate (vec/s) | knob | recall@200 | latency/query (CPU ms) | peak RSS (MB) | index on disk (MB) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        knob = "-" if r["knob"] is None else f"{r['knob']}={r['value']}"
        lines.append(
            f"| {r['size']:,} | {r['index']} | {r['build_s']} | {r['vectors_per_s']:,.0f} | {knob} "
            f"| {r['recall']} | {r['latency_ms']} | {r['peak_rss_mb']:,} | {r['index_disk_mb']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--indexes", nargs="+", default=["Flat", "HNSW32", "IVF1024,PQ48"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/store_scale"))
    parser.add_argument("-k", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.95, help="recall@k to reach")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row", nargs=2, metavar=("SIZE", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.row:
        n, spec = int(args.row[0]), args.row[1]
        result = run_row(n, spec, args)
        tmp = row_file(out, n, spec).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, row_file(out, n, spec))
        return 0
    for n in args.sizes:
        for spec in sorted(args.indexes, key=lambda s: s != "Flat"):  # Flat first: the truth
            if row_file(out, n, spec).exists():
                print(f"{n} {spec}: done before", file=sys.stderr)
                continue
            command = [sys.executable, __file__, "--row", str(n), spec, "--out", str(out)]
            command += ["-k", str(args.k), "--target", str(args.target)]
            command += ["--threads", str(args.threads), "--seed", str(args.seed)]
            print(f"{n} {spec}: running", file=sys.stderr, flush=True)
            subprocess.run(command, check=True)
    (out / "table.md").write_text(table(out))
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
