"""Test-time training: adapt a language model to each prompt, then restore it.

``TestTimeTrainer(model, tokenizer, datastore, TTTConfig(...))`` with ``evaluate`` (bits
per byte of a document after adapting to it), ``generate`` and ``adapt`` (the cycle as
a context manager).
"""

from siftlm.training.config import LoRASettings, TTTConfig, selection_methods
from siftlm.training.memory import ListMemory, MemoryLike, check_memory
from siftlm.training.results import DocumentResult, GenerationResult, MemoryItem, Timings
from siftlm.training.trainer import Adaptation, TestTimeTrainer

__all__ = [
    "Adaptation",
    "DocumentResult",
    "GenerationResult",
    "ListMemory",
    "LoRASettings",
    "MemoryItem",
    "MemoryLike",
    "TTTConfig",
    "TestTimeTrainer",
    "Timings",
    "check_memory",
    "selection_methods",
]
