"""siftlm: test-time fine-tuning of language models on data selected by SIFT.

The package follows the pipeline:

    corpus (``siftlm.data``) -> datastore (``siftlm.datastore``) -> selection
    (``siftlm.selection``) -> test-time training (``siftlm.training``) -> evaluation
    (``siftlm.evaluation``), plus the command line (``siftlm.cli``).

Public names are imported lazily so that ``import siftlm`` stays cheap (no torch,
no faiss) until something is actually used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "select": "siftlm.selection",
    "Selection": "siftlm.selection",
    "available_methods": "siftlm.selection",
    "load_corpus": "siftlm.data",
    "Datastore": "siftlm.datastore",
    "TestTimeTrainer": "siftlm.training",
    "open_store": "siftlm.defaults",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siftlm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
