"""``siftlm eval``: lm-evaluation-harness with the ``siftlm`` model and the shipped tasks."""

from __future__ import annotations

import argparse

EPILOG = """\
siftlm eval takes the arguments of lm-evaluation-harness's `lm_eval run` (below), e.g.
  siftlm eval --model_args pretrained=house-small method=sift n=45 k=200 lambda_=0.1 lr=1e-3 \\
      --tasks minipile --output_path runs/eval --log_samples
  siftlm eval --model hf --model_args pretrained=models/house-small --tasks wordnet_define
Needs the optional extra: pip install -e '.[eval]'."""


def _eval(args: argparse.Namespace) -> int:
    try:
        import lm_eval  # noqa: F401
    except ImportError as error:
        raise ValueError(
            "siftlm eval needs lm-evaluation-harness: pip install -e '.[eval]'"
        ) from error
    from siftlm.harness.run import run_eval

    if not args.harness_args or args.harness_args in (["-h"], ["--help"]):
        from siftlm.harness.run import parse_harness_args

        print(EPILOG + "\n")
        parse_harness_args(["--help"])
        return 0
    run_eval(list(args.harness_args))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        add_help=False,
        help="lm-evaluation-harness with test-time fine-tuning (model 'siftlm')",
        description="lm_eval run with the siftlm model and siftlm's tasks",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=_eval, harness_args=[], passthrough=True)
