"""House language models: tokenizer, pretraining, and loading any causal LM by name or path.

``load_model`` is the one code path through which siftlm obtains a model: a house model
name (``house-small``, ``house-medium``), a local folder written by ``save_pretrained``, or
a Hugging Face hub name that is already in the local cache (no network here).
"""

from __future__ import annotations

from siftlm.models.loading import (
    HOUSE_MODELS,
    ModelNotFoundError,
    load_model,
    load_tokenizer,
    resolve_model_path,
)

__all__ = [
    "HOUSE_MODELS",
    "ModelNotFoundError",
    "load_model",
    "load_tokenizer",
    "resolve_model_path",
]
