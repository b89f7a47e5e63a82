"""Names that may live on the Hugging Face hub: fail fast, with a suggestion, when they cannot.

Loading a name that is neither a local folder nor cached sends ``from_pretrained`` to the
hub; without a network it retries for about a minute before a message that blames
``HF_HUB_OFFLINE``. :func:`check_hub_name` decides in milliseconds instead:

- a spec that cannot be a hub id (``./x``, ``/abs/x``, ``~/x``, ``a/b/c``, or ``dir/x``
  where ``dir`` is a local folder) is a missing local folder: refused at once;
- a hub id in the local cache is loaded from the cache (``local_files_only``) when the
  hub is off (``HF_HUB_OFFLINE``) or cannot be reached;
- a hub id that is not cached is refused at once when the hub is off or unreachable
  (one TCP connection attempt, 2 s at most, made once per process).

Every refusal says "did you mean ..." when a known name or a sibling folder is close.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from urllib.parse import urlparse


def _offline() -> bool:
    values = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(value.upper() in {"1", "ON", "YES", "TRUE"} for value in values)


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@cache
def hub_reachable(endpoint: str | None = None, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout`` seconds."""
    url = urlparse(endpoint or _endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_path(spec: str, roots: Iterable[Path] = ()) -> bool:
    """True if ``spec`` cannot be a hub id, or its first part is a local folder (under
    the working directory or one of ``roots``), so that it must mean a local path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        return True
    head = spec.split("/")[0]
    return "/" in spec and any((root / head).is_dir() for root in (Path.cwd(), *roots))


def in_cache(repo_id: str, filenames: tuple[str, ...]) -> bool:
    """Whether one of ``filenames`` of the hub model ``repo_id`` is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames)
    except (ValueError, OSError):
        return False


def did_you_mean(spec: str, candidates: Iterable[str] = ()) -> str:
    """``"; did you mean X?"`` for the closest of ``candidates`` and of the folders beside
    ``spec``'s path, or ``""``."""
    pool = set(candidates)
    parent = Path(spec).expanduser().parent
    if str(parent) not in ("", ".") and parent.is_dir():
        prefix = spec[: len(spec) - len(Path(spec).name)]
        pool.update(prefix + p.name for p in parent.iterdir() if p.is_dir())
    close = difflib.get_close_matches(spec, sorted(pool), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def check_hub_name(
    spec: str,
    what: str,
    candidates: Iterable[str] = (),
    filenames: tuple[str, ...] = ("config.json",),
    roots: Iterable[Path] = (),
) -> bool:
    """For a ``spec`` that is not an existing local folder: raise at once if it cannot be
    loaded; else return whether to load it with ``local_files_only=True`` (it is cached
    but the hub is off or unreachable). ``what`` names it in messages ("embedder");
    ``filenames``: any of them in the cache counts as cached."""
    candidates = list(candidates)
    if looks_like_path(spec, roots):
        raise FileNotFoundError(f"{what} {spec}: no such folder{did_you_mean(spec, candidates)}")
    cached = in_cache(spec, filenames)
    if _offline() or not hub_reachable():
        if cached:
            return True
        why = "HF_HUB_OFFLINE is set" if _offline() else f"{_endpoint()} cannot be reached"
        raise FileNotFoundError(
            f"{what} {spec!r} is not a local folder nor in the Hugging Face cache, and "
            f"{why}{did_you_mean(spec, candidates)}"
        )
    return False
