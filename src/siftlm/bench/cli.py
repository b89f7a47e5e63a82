"""``siftlm bench``, ``siftlm report``, ``siftlm demo`` and ``siftlm generate``."""

from __future__ import annotations

import argparse
import time

from siftlm.bench.config import BenchConfig, add_arguments, from_arguments

# The demo: a small version of the benchmark, end to end on the embedded defaults.
DEMO = {
    "methods": ("base", "context", "nn", "sift"),
    "docs_per_domain": 1,
    "n": 20,
    "k": 100,
    "curve_methods": (),
    "out": "runs/demo",
}


def _bench(args: argparse.Namespace) -> int:
    from siftlm.bench import make_report, run_bench
    from siftlm.bench.results import results_path

    config = from_arguments(args)
    if args.ray:
        from siftlm.bench.ray_runner import run_bench_ray

        out = run_bench_ray(config, args.ray)
    else:
        out = run_bench(config)
    print(make_report(out))
    print(f"results: {results_path(out, config.rank, config.world_size)}, report: {out}/report.md")
    return 0


def _report(args: argparse.Namespace) -> int:
    from siftlm.bench import make_report

    print(make_report(args.folder, compare=args.compare, store=args.store))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from siftlm.bench import make_report, run_bench
    from siftlm.selection.example import run_example

    start = time.perf_counter()
    config = from_arguments(args)
    print("== 1. Selection: what nearest neighbours and SIFT pick for a two-part question\n")
    run_example(lambda_=config.lambda_)
    print("\n== 2. Test-time fine-tuning on the embedded defaults\n")
    print(
        f"siftlm demo: {config.model} adapts to {config.docs_per_domain} {config.split} "
        f"document(s) per domain with {', '.join(config.methods)} (n={config.n}, K={config.k})"
    )
    out = run_bench(config)
    print(make_report(out))
    print(f"done in {time.perf_counter() - start:.0f} s; results in {out}/")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from siftlm.bench.runner import open_store
    from siftlm.models import load_model
    from siftlm.training import TestTimeTrainer, TTTConfig

    model, tokenizer = load_model(args.model)
    model.eval()
    store = open_store(args.store)
    trainer = TestTimeTrainer(
        model,
        tokenizer,
        store,
        TTTConfig.from_name(
            args.method, n=args.n, k=args.k, lambda_=args.lambda_, lr=args.lr, seed=args.seed
        ),
    )
    if args.compare:
        base = TestTimeTrainer(model, tokenizer, None, TTTConfig(method="base"))
        text = base.generate(args.prompt, max_new_tokens=args.max_new_tokens).text
        print(f"--- base model\n{args.prompt}{text}\n")
    result = trainer.generate(args.prompt, max_new_tokens=args.max_new_tokens)
    print(f"--- after test-time fine-tuning ({result.method}, {result.steps} steps)")
    print(f"{result.prompt}{result.text}\n")
    if result.prior_variance is not None:
        print(
            f"uncertainty σ² of the prompt: {result.prior_variance:.4f} before, "
            f"{result.posterior_variance:.4f} after the selection"
        )
    print(f"memory sequences used ({len(result.memory)}):")
    for rank, item in enumerate(result.memory, start=1):
        snippet = " ".join(item.text.split())[:90]
        print(f"{rank:3d}. [{item.domain}] score {item.score:.3f}  {snippet}")
    return 0


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="evaluate test-time fine-tuning methods by bits per byte (resumable)",
        description="Every method on every document of a split; results are appended to "
        "OUT/results.jsonl (OUT/results-R-of-W.jsonl for worker R of W), and a rerun "
        "resumes where a run stopped.",
    )
    add_arguments(bench)
    bench.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help="documents as tasks on Ray actors (one per GPU, else per CPU), each loading the "
        "model and store once: the cluster at ADDRESS, or ray.init()'s default; results "
        "into the same results.jsonl; needs siftlm[ray]",
    )
    bench.set_defaults(func=_bench)

    report = subparsers.add_parser("report", help="rebuild report.md and plots of a bench run")
    report.add_argument("folder", help="the bench's results folder (its --out)")
    report.add_argument(
        "--compare",
        nargs="+",
        default=(),
        metavar="FOLDER",
        help="other bench folders whose methods join the table as <model>:<method>",
    )
    report.add_argument(
        "--store",
        default=None,
        help="the datastore the run selected from, for the redundancy of the picks "
        "(default: the one its config.json names)",
    )
    report.set_defaults(func=_report)

    demo = subparsers.add_parser(
        "demo",
        help="a small benchmark end to end on the embedded defaults",
        description="First the selection example (what nn and SIFT pick for a two-part "
        "question), then house-small, the embedded memory store (built on first use) and one "
        "test document per domain: base, context, nn and sift, and the per-domain table.",
    )
    add_arguments(demo, **DEMO)
    demo.set_defaults(func=_demo)

    generate = subparsers.add_parser(
        "generate", help="adapt to a prompt, generate a continuation, restore"
    )
    generate.add_argument("prompt")
    generate.add_argument("--model", default="house-small")
    generate.add_argument("--store", default=None, help="datastore folder (default: embedded)")
    generate.add_argument("--method", default="sift")
    generate.add_argument("-n", type=int, default=20, help="sequences to train on")
    generate.add_argument("-k", type=int, default=100, help="candidates from the index")
    generate.add_argument("--lambda", dest="lambda_", type=float, default=BenchConfig.lambda_)
    generate.add_argument("--lr", type=float, default=BenchConfig.lr)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--max-new-tokens", type=int, default=60)
    generate.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also print the base model's continuation",
    )
    generate.set_defaults(func=_generate)
