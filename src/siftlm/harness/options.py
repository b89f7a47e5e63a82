"""``--model_args`` of the ``siftlm`` harness backend: the backend's own options and
every ``TTTConfig`` field by name.

The TTT fields are read from ``dataclasses.fields(TTTConfig)``, so fields added to
``TTTConfig`` are accepted here without a change. ``method`` also takes the benchmark's
names ("context", "sift-adaptive", ...: ``TTTConfig.from_name``), and ``lambda`` is
accepted for ``lambda_`` (as ``siftlm bench --lambda``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

# The backend's own arguments (not TTTConfig fields); the harness adds batch_size,
# max_batch_size and device from its command line.
BACKEND_ARGS: tuple[str, ...] = (
    "pretrained",
    "tokenizer",
    "store",
    "batch_size",
    "max_batch_size",
    "device",
    "progress",
)


def ttt_field_names() -> tuple[str, ...]:
    from siftlm.training import TTTConfig

    return tuple(spec.name for spec in dataclasses.fields(TTTConfig))


def _canonical(name: str, fields: tuple[str, ...]) -> str:
    """``lambda`` -> ``lambda_`` (a field whose name ends in ``_`` may be given without it)."""
    return f"{name}_" if name not in fields and f"{name}_" in fields else name


def split_model_args(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backend arguments, TTTConfig arguments) of ``args``.

    Raises ValueError naming every argument that is neither, with close matches.
    """
    fields = ttt_field_names()
    backend, ttt, unknown = {}, {}, []
    for name, value in args.items():
        if name in BACKEND_ARGS:
            backend[name] = value
        elif _canonical(name, fields) in fields:
            ttt[_canonical(name, fields)] = value
        else:
            unknown.append(name)
    if unknown:
        known = (*BACKEND_ARGS, *fields)
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"unknown model_args for siftlm: {', '.join(hints)}; known: the backend's "
            f"{', '.join(BACKEND_ARGS)} and the TTTConfig fields {', '.join(fields)}"
        )
    return backend, ttt


def make_ttt_config(values: dict[str, Any]):
    """The ``TTTConfig`` of ``values`` (TTTConfig field names; ``method`` may be a
    benchmark name such as "context" or "sift-adaptive").

    Raises ValueError that starts with "model_args" for an invalid value.
    """
    from siftlm.training import TTTConfig

    values = dict(values)
    method = values.pop("method", TTTConfig.method)
    try:
        return TTTConfig.from_name(str(method), **values)
    except (TypeError, ValueError) as error:
        given = ", ".join(f"{k}={v!r}" for k, v in {"method": method, **values}.items())
        raise ValueError(f"model_args ({given}): {error}") from error


def parse_batch_size(batch_size: int | str | None, max_batch_size: int | None) -> int | None:
    """Continuations scored per forward pass: an int >= 1, or "auto" / "auto:N" (all the
    continuations of one context, at most ``max_batch_size``) -> None for "all"."""
    if batch_size is None:
        return 1
    if str(batch_size).startswith("auto"):
        return max_batch_size
    try:
        size = int(batch_size)
    except (TypeError, ValueError):
        raise ValueError(f"batch_size must be an int >= 1 or 'auto', got {batch_size!r}") from None
    if size < 1:
        raise ValueError(f"batch_size must be an int >= 1 or 'auto', got {batch_size!r}")
    return size
