"""``siftlm bench``, ``siftlm report``, ``siftlm demo`` and ``siftlm generate``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from siftlm.bench.config import BenchConfig, add_arguments, from_arguments
from siftlm.defaults import configure_threads

# The demo: a small version of the benchmark, end to end on the embedded defaults.
# Selection and training follow the package defaults (TTTConfig's), as everywhere.
DEMO = {
    "methods": ("base", "context", "nn", "sift"),
    "docs_per_domain": 1,
    "curve_methods": (),
    "out": "runs/demo",
}


# Methods that may pick a candidate again (``nn-f`` repeats one on purpose).
_REPEATING = ("sift", "sift-adaptive", "us")


def warn_cycling(methods, n: int, k: int) -> None:
    """With n > k, SIFT (and ``us``) run out of new candidates and train on the same k
    sequences again and again: say so, since it is rarely what one wants."""
    repeating = [m for m in methods if m in _REPEATING]
    if repeating and n > k:
        print(
            f"warning: n={n} steps from k={k} candidates: {', '.join(repeating)} will train "
            f"on at most {k} distinct sequences, repeating them (about {n / k:.1f} times "
            "each); raise -k or lower -n",
            file=sys.stderr,
        )


def _write_report(out, **options) -> None:
    """Print the report and where it went. After a bench or demo run, a report that may
    not be replaced (made with other options, or edited) is kept, with a word why: the
    results are saved either way."""
    from siftlm.bench import make_report
    from siftlm.bench.report_file import REPORT_MD, ReportConflictError

    notes: list[str] = []
    try:
        text = make_report(out, notes=notes, **options)
    except ReportConflictError as error:
        if options:  # `siftlm report`: the user asked for this report
            raise
        print(f"report not rewritten: {error}", file=sys.stderr)
        return
    print(text)
    for note in notes:
        print(f"report: {note}", file=sys.stderr)
    print(f"report written to {Path(out) / REPORT_MD}")


def _bench(args: argparse.Namespace) -> int:
    from siftlm.bench import run_bench
    from siftlm.bench.results import results_path

    config = from_arguments(args)
    warn_cycling(config.methods, config.n, config.k)
    configure_threads(args.threads)
    if args.ray:
        from siftlm.bench.ray_runner import run_bench_ray

        out = run_bench_ray(config, args.ray)
    else:
        out = run_bench(config)
    print(f"results: {results_path(out, config.rank, config.world_size)}")
    _write_report(out)
    return 0


def _report(args: argparse.Namespace) -> int:
    _write_report(args.folder, compare=args.compare, store=args.store, force=args.force)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from siftlm.bench import run_bench
    from siftlm.selection.example import run_example

    start = time.perf_counter()
    config = from_arguments(args)
    warn_cycling(config.methods, config.n, config.k)
    threads = configure_threads(args.threads)
    print("== 1. Selection: what nearest neighbours and SIFT pick for a two-part question\n")
    run_example(lambda_=config.lambda_)
    print("\n== 2. Test-time fine-tuning on the embedded defaults\n")
    print(
        f"siftlm demo: {config.model} adapts to {config.docs_per_domain} {config.split} "
        f"document(s) per domain with {', '.join(config.methods)} (n={config.n}, K={config.k}; "
        f"{threads} torch thread(s))"
    )
    out = run_bench(config)
    _write_report(out)
    print(f"done in {time.perf_counter() - start:.0f} s; results in {out}/")
    return 0


# Generation defaults against the degenerate repetition of small greedy models (the
# house models repeat a line or a token within a few words without them); passed to
# transformers' ``generate`` through ``TestTimeTrainer.generate``'s keyword arguments.
GENERATION = {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3}
EXPECT = (
    "note: {model} is a small model ({size}, trained on 23 MB of text): expect text in "
    "the style of its corpus's domains, often off topic or repetitive, not answers"
)


def _progress(n: int):
    """A stderr progress bar for the training steps (``on_step``), so that the 20-40 s of
    training are not silent."""
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc="training", unit="step", dynamic_ncols=True, leave=False)

    def on_step(step: int) -> None:
        if step:
            bar.update(1)

    return bar, on_step


def _generate(args: argparse.Namespace) -> int:
    from siftlm.defaults import HOUSE_MODELS, configure_threads, open_store
    from siftlm.models import load_model
    from siftlm.training import TestTimeTrainer, TTTConfig

    configure_threads(args.threads)
    config = TTTConfig.from_name(
        args.method, n=args.n, k=args.k, lambda_=args.lambda_, lr=args.lr, seed=args.seed
    )
    warn_cycling([config.name], args.n, args.k)
    print(f"loading {args.model} and the datastore ...", file=sys.stderr)
    model, tokenizer = load_model(args.model)
    if args.model in HOUSE_MODELS:
        size = f"{model.num_parameters() / 1e6:.1f}M parameters"
        print(EXPECT.format(model=args.model, size=size), file=sys.stderr)
    store = open_store(args.store) if config.method != "base" else None
    trainer = TestTimeTrainer(model, tokenizer, store, config)
    options = {
        "max_new_tokens": args.max_new_tokens,
        "repetition_penalty": args.repetition_penalty,
        "no_repeat_ngram_size": args.no_repeat_ngram_size,
    }
    if args.compare:
        base = TestTimeTrainer(model, tokenizer, None, TTTConfig(method="base"))
        print(f"--- base model\n{args.prompt}{base.generate(args.prompt, **options).text}\n")
    bar, on_step = _progress(args.n)
    try:
        result = trainer.generate(args.prompt, on_step=on_step, **options)
    finally:
        bar.close()
    _print_generation(result)
    return 0


def _print_generation(result) -> None:
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
    print(f"time: {result.timings.total:.1f} s", file=sys.stderr)


def _add_generate(subparsers) -> None:
    from siftlm.defaults import DEFAULT_MODEL

    generate = subparsers.add_parser(
        "generate",
        help="adapt to a prompt, generate a continuation, restore",
        description="Select n of the k nearest memory sequences for the prompt (SIFT by "
        "default), take one gradient step on each, continue the prompt, restore the model. "
        "With the house models expect text in the style of the corpus, often repetitive: "
        "they are 5M and 23M-parameter models trained on 23 MB.",
    )
    generate.add_argument("prompt", help="the text to continue")
    generate.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="house name, folder or hub name (default: %(default)s)",
    )
    generate.add_argument(
        "--store",
        default=None,
        help="datastore folder (default: the embedded memory store, built on first use)",
    )
    generate.add_argument(
        "--method",
        default="sift",
        help="sift, nn, nn-f, us, random, mmr, base (default: %(default)s)",
    )
    generate.add_argument(
        "-n",
        type=int,
        default=20,
        help="sequences to train on (one step each) (default: %(default)s)",
    )
    generate.add_argument(
        "-k", type=int, default=100, help="candidates from the index (default: %(default)s)"
    )
    generate.add_argument(
        "--lambda",
        dest="lambda_",
        type=float,
        default=BenchConfig.lambda_,
        help="SIFT's λ (default: %(default)s)",
    )
    generate.add_argument(
        "--lr", type=float, default=BenchConfig.lr, help="learning rate (default: %(default)s)"
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    _add_generation_options(generate)
    generate.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also print the base model's continuation (default: %(default)s)",
    )
    _add_threads(generate)
    generate.set_defaults(func=_generate)


def _add_generation_options(generate: argparse.ArgumentParser) -> None:
    """How the continuation is decoded (``TestTimeTrainer.generate``'s keywords)."""
    generate.add_argument(
        "--max-new-tokens", type=int, default=60, help="tokens to generate (default: %(default)s)"
    )
    generate.add_argument(
        "--repetition-penalty",
        type=float,
        default=GENERATION["repetition_penalty"],
        help="transformers' repetition penalty (1: none) (default: %(default)s)",
    )
    generate.add_argument(
        "--no-repeat-ngram-size",
        type=int,
        default=GENERATION["no_repeat_ngram_size"],
        help="never repeat an n-gram of this size (0: allowed) (default: %(default)s)",
    )


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: $SIFTLM_THREADS or $OMP_NUM_THREADS if set, else the "
        "cores that the machine's load leaves idle, at least 1)",
    )


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="evaluate test-time fine-tuning methods by bits per byte (resumable)",
        description="Every method on every document of a split; results are appended to "
        "OUT/results.jsonl (OUT/results-R-of-W.jsonl for worker R of W), and a rerun "
        "resumes where a run stopped.",
    )
    add_arguments(bench)
    _add_threads(bench)
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
        default=None,
        metavar="FOLDER",
        help="other bench folders whose methods join the table as <model>:<method>",
    )
    report.add_argument(
        "--store",
        default=None,
        help="the datastore the run selected from, for the redundancy of the picks "
        "(default: the one its config.json names)",
    )
    report.add_argument(
        "--force",
        action="store_true",
        help="replace report.md also where it was made with other options or edited "
        "(by default options not given are those the existing report records, and a "
        "report that would lose content is refused)",
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
    _add_threads(demo)
    demo.set_defaults(func=_demo)

    _add_generate(subparsers)
