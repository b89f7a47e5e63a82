"""Selection commands of the `siftlm` command line.

``siftlm example`` runs the "age and children" selection example (``siftlm.selection.example``):
what nearest neighbours and SIFT pick for a prompt that asks two things.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "example",
        help="what nearest neighbours and SIFT pick for a two-part question",
        description=(
            "Embed a prompt that asks two things and a few candidate sentences with "
            "all-MiniLM-L6-v2, then print what nearest neighbours and SIFT select."
        ),
    )
    parser.add_argument(
        "--n", type=int, default=2, help="picks per method, 1 to 8 (the candidates; default: 2)"
    )
    parser.add_argument(
        "--lambda",
        dest="lambda_",
        type=float,
        default=0.01,
        help="SIFT's noise variance λ (default: 0.01, activeft's default)",
    )
    parser.set_defaults(func=_example)


def _example(args: argparse.Namespace) -> int:
    from siftlm.selection.example import run_example

    run_example(n=args.n, lambda_=args.lambda_)
    return 0
