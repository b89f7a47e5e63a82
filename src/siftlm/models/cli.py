"""``siftlm pretrain`` and ``siftlm tokenizer train``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from siftlm.defaults import HOUSE_TOKENIZER


def parse_deadline(value: str) -> float:
    """``HH:MM`` (UTC, today, or tomorrow if already past) or an ISO time -> Unix time."""
    now = dt.datetime.now(dt.timezone.utc)
    try:
        clock = dt.datetime.strptime(value, "%H:%M").time()
    except ValueError:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.timestamp()
    moment = dt.datetime.combine(now.date(), clock, tzinfo=dt.timezone.utc)
    if moment <= now:
        moment += dt.timedelta(days=1)
    return moment.timestamp()


def register(subparsers: argparse._SubParsersAction) -> None:
    from siftlm.models.sizes import SIZES

    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a house language model (GPT-2 architecture) from scratch; resumable",
        description="Pretrain a GPT-2 model on the corpus's pretrain split. Rerunning the "
        "same command on the same --out resumes from its last checkpoint.",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--out", required=True, help="run folder (checkpoint, log, final weights)")
    p.add_argument(
        "--tokenizer",
        default=HOUSE_TOKENIZER,
        help="tokenizer name or folder (default: the house tokenizer)",
    )
    p.add_argument("--max-tokens", type=int, default=None, help="training token budget")
    p.add_argument(
        "--deadline",
        type=parse_deadline,
        default=None,
        help="end by this time (HH:MM UTC or ISO); the cosine decays by then",
    )
    p.add_argument("--context", type=int, default=None, help="block length (default: size's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument("--eval-docs", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps")
    p.add_argument("--log-every", type=int, default=10, help="steps")
    p.add_argument(
        "--train-file",
        action="append",
        default=[],
        help="JSONL file with a 'text' per line instead of the corpus (repeatable)",
    )
    p.add_argument("--val-file", action="append", default=[])
    p.add_argument("--max-train-docs", type=int, default=None)
    p.set_defaults(func=run_pretrain)

    t = subparsers.add_parser("tokenizer", help="train the byte-level BPE tokenizer")
    tsub = t.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    train = tsub.add_parser("train", help="train on the corpus's pretrain split")
    train.add_argument("--vocab-size", type=int, default=8192)
    train.add_argument("--context", type=int, default=256, help="model_max_length")
    train.add_argument(
        "--out",
        action="append",
        required=True,
        help="folder to save into (repeatable: identical copies)",
    )
    train.set_defaults(func=run_tokenizer_train)


def run_pretrain(args: argparse.Namespace) -> int:
    from siftlm.models.pretrain import PretrainConfig, pretrain

    config = PretrainConfig(
        out=args.out,
        size=args.size,
        tokenizer=args.tokenizer,
        context=args.context,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        max_tokens=args.max_tokens,
        deadline=args.deadline,
        eval_every=args.eval_every,
        eval_docs=args.eval_docs,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        threads=args.threads,
        train_files=args.train_file,
        val_files=args.val_file,
        max_train_docs=args.max_train_docs,
    )
    pretrain(config)
    return 0


def run_tokenizer_train(args: argparse.Namespace) -> int:
    from siftlm.data import load_corpus
    from siftlm.models.tokenizer import round_trips, save_tokenizer, train_tokenizer

    documents = list(load_corpus("pretrain"))
    tokenizer = train_tokenizer((d.text for d in documents), args.vocab_size, args.context)
    failures = [d.id for d in documents if not round_trips(tokenizer, d.text)]
    if failures:
        raise ValueError(f"tokenizer does not round-trip {len(failures)} documents: {failures[:5]}")
    save_tokenizer(tokenizer, args.out)
    print(
        f"tokenizer: {len(tokenizer)} tokens, trained on {len(documents)} pretrain documents; "
        f"saved to {', '.join(args.out)}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """The models' commands alone: ``python -m siftlm.models.cli pretrain ...``."""
    parser = argparse.ArgumentParser(prog="python -m siftlm.models.cli")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"siftlm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
