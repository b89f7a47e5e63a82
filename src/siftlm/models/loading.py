"""Resolve a model name or path and load it with the standard Hugging Face classes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HOUSE_MODELS: tuple[str, ...] = ("house-small", "house-medium")


class ModelNotFoundError(FileNotFoundError):
    """The model name is neither a local folder, a house model, nor a cached hub model."""


def models_dir() -> Path:
    """Folder holding the house models: ``$SIFTLM_MODELS_DIR`` or the repository's ``models/``."""
    override = os.environ.get("SIFTLM_MODELS_DIR")
    if override:
        return Path(override)
    # src/siftlm/models/loading.py -> repository root
    return Path(__file__).resolve().parents[3] / "models"


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """A local folder for house models and existing paths; the name unchanged otherwise."""
    name = str(name_or_path)
    if name in HOUSE_MODELS:
        folder = models_dir() / name
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"house model {name!r} not found at {folder} (no config.json); "
                "train it with `siftlm pretrain` or set SIFTLM_MODELS_DIR"
            )
        return str(folder)
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    return name


def _not_found(name: str, error: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {name!r} not found: it is not a local folder, not a house model "
        f"({', '.join(HOUSE_MODELS)}), and not in the local Hugging Face cache; "
        f"no network is available here (HF_HUB_OFFLINE) ({type(error).__name__}: {error})"
    )


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> Any:
    """``AutoTokenizer.from_pretrained`` on the resolved name; a pad token is guaranteed."""
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
