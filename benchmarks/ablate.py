"""Ablations on the VALIDATION split (issue 16, items 3 and 4): when does SIFT beat
nearest neighbours? Memory size, duplication injected into the memory, λ, the query
(one vector or every chunk), the embedder, the base model's strength, and the newest
rival (hull, and gradient reuse), which also runs on the TEST split.

    python benchmarks/ablate.py run --rank 0 --world-size 2 &   # two workers share the
    python benchmarks/ablate.py run --rank 1 --world-size 2     # documents; resumable
    python benchmarks/ablate.py summarize                       # -> benchmarks/ablate/
    python benchmarks/ablate.py run --only hull sift-reuse hull-reuse   # some conditions
    python benchmarks/ablate.py run --split test --rank 0 --world-size 2 &   # the test
    python benchmarks/ablate.py run --split test --rank 1 --world-size 2     # split's set
    python benchmarks/ablate.py summarize --split test          # -> benchmarks/ablate-test/

Every condition runs house-small (unless it says otherwise) on the first
``DOCS_PER_DOMAIN`` documents of every domain (2 x 14 = 28), with the package's defaults
(``TTTConfig``: n, K, λ, Adam, full fine-tuning) EXCEPT the learning rate (``TRAINING``):
one learning rate, 3e-4, for every prompt and method, no variance gate and no learning
rates by variance. The gate answers a prompt whose selection leaves much uncertainty
with the base model, for nn and sift alike, so many prompts would show no difference
between the methods; and ``variance_lr`` would give nn and sift different learning
rates on the same document. With one learning rate only the selection differs (and the
"all" condition is the held-out sweep's in-domain lr3e-4 run: same documents, same
values). Learning curves are off.

Conditions (``ablate_conditions.CONDITIONS``, in the order they run; ``--only NAME ...``
runs some of them):

- base (once); the whole memory at the default λ ("all", shared by every ablation);
  exact and near copies of 30 % of the memory injected (``BenchConfig.duplicates``; near
  copies: a tenth of the words replaced, embedded once and cached in the run's folder);
  a random ¼ and ½ of the memory (``BenchConfig.memory_fraction``, nested subsets,
  applied at search time by the held-out exclusion); λ = 0.01 and 1.0 (sift only while
  ``variance_lr`` is off, nn's "all" results are shared: its picks do not depend on λ);
  10 % duplication (exact, near).
- hull: method ``hull`` (HullFT) on the "all" configuration (nn and sift from "all").
- sift-reuse, hull-reuse: sift and hull with ``gradient_reuse = n`` (45): the j-th
  repeat (from 0) of a training window is recomputed when j % gradient_reuse == 0, and a
  window is trained on at most n times per prompt, so its gradient is computed once and
  reused for every repeat. Reported with the forward/backward passes
  (``DocumentResult.passes``) and training seconds (``timings.train``) with and without.
- query-chunks: ``query_vectors="chunks"``: every memory-length chunk of the document is
  a target (instead of the first 256 wordpieces as one vector); nn and sift.
- base-4x, model-4x: the base, nn and sift with the longer-pretrained house-small
  (``MODEL_4X`` = runs/house-small-4x, where ``siftlm pretrain --out runs/house-small-4x``
  saves its final weights; ``--model-4x PATH`` for another). Skipped with a message
  while that folder holds no finished model (rerun later: resumable). Its nn and sift
  are reported against its own base.
- embed-causal: nn and sift searching another store: the same memory chunks embedded
  by ``causal:models/house-small`` (mean-pooled last hidden state), at
  stores/minipile-causal-house-small; the first run builds it if missing (about 20
  CPU-minutes, resumable), as does this command (from the repository root)::

      siftlm index build minipile --out stores/minipile-causal-house-small \\
          --embedder causal:models/house-small --tokenizer models/house-small \\
          --max-tokens 256 --index flat

- dup-exact-100: an exact copy of every sequence (each is in the memory twice): the
  heaviest duplication tried, nn and sift.
- dup-exact-100x4: 4 exact copies of every sequence (each is in the memory 5 times;
  ``duplicate_copies``), nn and sift; dup-exact-100x9: 9 copies (10 times each), the
  heaviest duplication, run last.
- query-chunks-4: as query-chunks with at most 4 chunks, evenly spaced (``max_targets``).

``--split test`` runs base, all, hull, sift-reuse and hull-reuse on the first 2 TEST
documents per domain into benchmarks/ablate-test/ (the validation folder is untouched).

Cost (measured in these runs so far, 1 thread under this machine's load): 8 to 14 s per
document and method, so about 5 CPU-minutes per method over 28 documents: about 10 for
a condition with nn and sift, 5 for hull, sift-reuse and hull-reuse each, 1 for base-4x;
query-chunks adds the embedding of every chunk of each document (a few per document);
embed-causal adds the store's build once. The test split's set: about 25 CPU-minutes.

The summary has one table and one plot per section: per condition, nn and sift in % of
base bits (a ratio of sums over documents, paired SE), sift/nn (sift's bits in % of
nn's, paired SE over documents) and the documents where sift beats nn; the base
strength's rows per model against its own base, with its base bpb; the rival's rows per
method in % of base, of sift and of nn, with passes and training seconds. A row is
reported on the documents that all of its runs have finished (the docs column).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its helper modules

from ablate_conditions import (  # noqa: E402
    BY_NAME,
    CONDITIONS,
    MODEL,
    MODEL_4X,
    OUT,
    OUT_TEST,
    SPLIT,
    SPLITS,
    Condition,
    Resources,
    bench_config,
    model_of,
    names_for,
    out_folder,
)
from ablate_summary import load, tables, write  # noqa: E402

__all__ = ["BY_NAME", "CONDITIONS", "Condition", "bench_config", "main", "run_condition"]


def run_condition(
    condition: Condition,
    out: Path,
    resources: Resources,
    *,
    split: str = SPLIT,
    rank: int = 0,
    world_size: int = 1,
    model_4x: str = MODEL_4X,
    documents: list | None = None,
    **extra,
) -> Path | None:
    """Run (or resume) one condition into ``out/runs/<name>``; None: skipped, as its
    model is not ready (a pretraining run still going)."""
    from siftlm.bench import run_bench

    reason = resources.unready(model_of(condition, model_4x))
    if reason is not None:
        print(f"   skipped: {reason}", file=sys.stderr, flush=True)
        return None
    config = bench_config(out, condition, rank, world_size, split=split, model_4x=model_4x, **extra)
    model, tokenizer = resources.model(config.model)
    # also for base: a resumed run checks the store it was made with (config.json)
    store = resources.store(condition.store)
    return run_bench(config, model=model, tokenizer=tokenizer, store=store, documents=documents)


def run(args: argparse.Namespace) -> None:
    import time

    import torch

    torch.set_num_threads(args.threads)
    names = names_for(args.split, args.only)
    out = Path(args.out) if args.out else out_folder(args.split)
    extra = {"domains": tuple(args.domains)} if args.domains else {}
    if extra and out.resolve() in (OUT, OUT_TEST):
        raise SystemExit("--domains is for trial runs: pass another --out")
    resources = Resources(args.store)
    for name in names:
        print(f"== {name} (worker {args.rank}/{args.world_size})", file=sys.stderr)
        start = time.perf_counter()
        run_condition(
            BY_NAME[name],
            out,
            resources,
            split=args.split,
            rank=args.rank,
            world_size=args.world_size,
            model_4x=args.model_4x,
            **extra,
        )
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def summarize(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else out_folder(args.split)
    found = tables(out, args.split)
    if not any(found.values()):
        raise SystemExit(f"no finished condition in {out / 'runs'} yet: run first")
    write(out, found, len(load(out, "base", "base")), MODEL, args.split)
    print((out / "summary.md").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run", help="run (or resume) the conditions, in order")
    runner.add_argument("--rank", type=int, default=0)
    runner.add_argument("--world-size", type=int, default=1)
    runner.add_argument("--threads", type=int, default=1)
    runner.add_argument("--only", nargs="+", metavar="NAME", help="these conditions only")
    runner.add_argument("--store", default=None, help="datastore folder (default: the memory)")
    runner.add_argument("--domains", nargs="+", help="trial runs only (with another --out)")
    runner.add_argument(
        "--model-4x", default=MODEL_4X, help=f"the stronger model (default: {MODEL_4X})"
    )
    summary = sub.add_parser("summarize", help="tables and plots")
    for sub_parser in (runner, summary):
        sub_parser.add_argument("--split", default=SPLIT, choices=SPLITS)
        sub_parser.add_argument(
            "--out", default=None, help=f"runs/ and summary (default: {OUT}, or {OUT_TEST})"
        )
    runner.set_defaults(func=run)
    summary.set_defaults(func=summarize)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
