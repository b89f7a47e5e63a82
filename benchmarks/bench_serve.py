"""Load on `siftlm serve` over loopback: throughput and latency for base and SIFT.

    python benchmarks/bench_serve.py --store stores/minipile-all-MiniLM-L6-v2

starts `siftlm serve` (house-small, one torch thread, 127.0.0.1, a free port) in a child
process, then for each number of concurrent clients (1, 4, 16) and each method (base,
sift with n=8, k=50; interleaved, so that both see the same machine load) sends
`--requests` completion requests (16 new tokens, greedy; prompts: the first 300
characters of the test documents, in turn) from that many client threads, and reports
requests per second and the p50/p95 latency of a request (queueing included). The
server runs one adaptation at a time, so with more clients the latency grows with the
queue while the throughput stays that of one worker. Bounded: at most
2 x 3 x `--requests` requests; results go to `--out` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "siftlm.cli", "serve", "--model", args.model, "--port", str(port),
        "--threads", str(args.threads), "--max-queue", "64", "--log-level", "warning",
        "-n", str(args.n), "-k", str(args.k), "--variance-gate", args.variance_gate,
    ]  # fmt: skip
    if args.store:
        command += ["--store", args.store]
    server = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not start in 300 s")


def run_cell(url: str, model: str, prompts, method: str, clients: int, requests: int) -> dict:
    """``requests`` completions from ``clients`` threads; latencies and wall time."""

    def one(i: int) -> float:
        body = {
            "model": model, "prompt": prompts[i % len(prompts)], "max_tokens": 16,
            "ttft": {"method": method},
        }  # fmt: skip
        start = time.perf_counter()
        response = http.post(f"{url}/v1/completions", json=body, timeout=600)
        response.raise_for_status()
        return time.perf_counter() - start

    with httpx.Client() as http, ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        latencies = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=20, method="inclusive")
    return {
        "method": method,
        "clients": clients,
        "requests": requests,
        "wall_s": wall,
        "requests_per_s": requests / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": quantiles[18],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="house-small")
    parser.add_argument("--store", default=None, help="datastore folder (default: embedded)")
    parser.add_argument("--requests", type=int, default=24, help="requests per cell")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--methods", nargs="+", default=["base", "sift"])
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--variance-gate", default="none", help="'none': every request trains")
    parser.add_argument("--out", default="benchmarks/results/serve.json")
    args = parser.parse_args()
    from siftlm.data import load_corpus

    prompts = [doc.text[:300] for doc in load_corpus("test")]
    port = free_port()
    server = start_server(args, port)
    url, model = f"http://127.0.0.1:{port}", Path(args.model.rstrip("/")).name
    try:
        run_cell(url, model, prompts, "sift", 1, 2)  # warm-up
        rows = [
            run_cell(url, model, prompts, method, clients, args.requests)
            for clients in args.clients
            for method in args.methods
        ]
    finally:
        server.terminate()
        server.wait(timeout=60)
    print("| method | clients | requests | req/s | p50 latency (s) | p95 latency (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['method']} | {row['clients']} | {row['requests']} | "
            f"{row['requests_per_s']:.2f} | {row['p50_s']:.2f} | {row['p95_s']:.2f} |"
        )
    keys = ("model", "store", "n", "k", "threads", "variance_gate")
    conditions = {key: getattr(args, key) for key in keys}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"conditions": conditions, "rows": rows}, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
