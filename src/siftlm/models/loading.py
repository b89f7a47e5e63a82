"""Resolve a model name or path and load it with the standard Hugging Face classes.

One set of rules for every model and tokenizer siftlm loads by name (``load_model``,
``load_tokenizer``; the datastore's chunking, ``siftlm.datastore.chunking.fast_tokenizer``,
resolves folders the same way): a house model name
(``house-small``), a local folder (relative ones also from the project root), or a hub
name. A hub name that is not in the local cache fails at once, without network retries,
when ``HF_HUB_OFFLINE`` is set or the hub cannot be reached; a name close to a house
model's is answered with "did you mean".
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from siftlm.defaults import HOUSE_MODELS, models_dir, project_path

__all__ = [
    "HOUSE_MODELS",
    "ModelNotFoundError",
    "load_model",
    "load_tokenizer",
    "models_dir",
    "resolve_model_path",
]

_TRUE = {"1", "true", "yes", "on"}


class ModelNotFoundError(FileNotFoundError):
    """The model name is neither a local folder, a house model, nor a reachable hub model."""


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """A local folder for house models and existing paths; a hub name unchanged.

    Raises ``ModelNotFoundError`` for a missing house model, and at once for a name that
    is neither local nor cached where the hub cannot be used (see the module's doc)."""
    name = str(name_or_path)
    if name in HOUSE_MODELS:
        folder = models_dir() / name
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"house model {name!r} not found at {folder} (no config.json); "
                "train it with `siftlm pretrain` or set SIFTLM_MODELS_DIR"
            )
        return str(folder)
    path = project_path(name)
    if path.exists():
        return str(path)
    _check_hub_name(name)
    return name


def _local_names() -> list[str]:
    folders = models_dir()
    local = [p.name for p in folders.iterdir() if p.is_dir()] if folders.is_dir() else []
    return sorted({*HOUSE_MODELS, *local})


def _hub_unreachable() -> str | None:
    """Why the hub cannot be used now (None: it may be); the probe is ``siftlm.hub``'s."""
    from siftlm import hub

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return "HF_HUB_OFFLINE is set: no network access to the Hugging Face hub"
    endpoint = hub._endpoint()
    if not hub.hub_reachable(endpoint):
        return f"the Hugging Face hub ({endpoint}) cannot be reached: no network"
    return None


def _in_hub_cache(name: str) -> bool:
    from siftlm import hub

    return hub.in_cache(name, ("config.json",))


def _check_hub_name(name: str) -> None:
    """Fail fast, before transformers' network retries, for a name that can only come
    from the hub when the hub cannot be used; suggest a close local name."""
    close = difflib.get_close_matches(Path(name).name, _local_names(), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if close and "/" not in name:
        raise ModelNotFoundError(f"model {name!r} not found{hint}")
    parent = Path(name).expanduser().parent
    if str(parent) not in (".", "") and project_path(parent).is_dir():  # meant as a folder
        raise ModelNotFoundError(f"model folder {name!r} not found (no such folder){hint}")
    if _in_hub_cache(name):
        return
    why = _hub_unreachable()
    if why is not None:
        raise ModelNotFoundError(
            f"model {name!r} not found: it is not a local folder, not a house model "
            f"({', '.join(HOUSE_MODELS)}), not in the local Hugging Face cache, and {why}{hint}"
        )


def _not_found(name: str, error: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {name!r} could not be loaded: not a local folder, not a house model "
        f"({', '.join(HOUSE_MODELS)}), and not loadable from the Hugging Face hub or its "
        f"cache ({type(error).__name__}: {error})"
    )


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> Any:
    """``AutoTokenizer.from_pretrained`` on the resolved name; a pad token is guaranteed
    (the eos token, where the tokenizer has none)."""
    from transformers import AutoTokenizer

    resolved = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except (OSError, ValueError) as error:
        raise _not_found(str(name_or_path), error) from error
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str | os.PathLike[str], dtype: Any = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` with ``AutoModelForCausalLM``/``AutoTokenizer``.

    ``dtype`` defaults to ``torch.float32`` (house weights are stored in float16 and
    are upcast for training). The model is returned in eval mode.
    """
    import torch
    from transformers import AutoModelForCausalLM

    resolved = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved, dtype=dtype or torch.float32)
    except (OSError, ValueError) as error:
        raise _not_found(str(name_or_path), error) from error
    tokenizer = load_tokenizer(resolved)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer
