"""The ``siftlm`` command.

Each stage of the pipeline registers its own sub-commands: a module listed in
``COMMAND_MODULES`` exposes ``register(subparsers)`` which adds its parsers and sets
``func`` (called with the parsed namespace, returns an exit code). Heavy imports
(torch, faiss, transformers) happen inside those functions, not here, so that
``siftlm --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "siftlm.selection.cli",
    "siftlm.models.cli",
    "siftlm.datastore.cli",
    "siftlm.data.cli",
    "siftlm.bench.cli",
    "siftlm.serve.cli",
    "siftlm.harness.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siftlm",
        description="Test-time fine-tuning of language models on data selected by SIFT.",
    )
    from siftlm import __version__

    parser.add_argument("--version", action="version", version=f"siftlm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # only a pass-through command (``siftlm eval``) takes others' arguments
        if not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.harness_args = extra
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Bad input: one clear line, no traceback.
        print(f"siftlm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
