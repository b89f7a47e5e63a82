"""How a store is built: one frozen dataclass, used by ``build_store``, ``Datastore.build``
and ``siftlm index build`` (whose options are made from its fields).

Each field's ``metadata`` holds its ``help`` and, for the command line, ``cli``: the
``argparse`` options of its flag (``flag`` overrides ``--field-name``; ``cli=None``: not
on the command line, e.g. because the value is an object).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from siftlm.datastore.chunking import DEFAULT_TOKENIZER
from siftlm.datastore.embedders import DEFAULT_EMBEDDER, Embedder
from siftlm.datastore.index import INDEX_KINDS
from siftlm.datastore.precomputed import PrecomputedEmbeddings

DTYPES = ("float16", "float32")
DEFAULT_SHARD_SIZE = 512


def _option(default: Any, help_text: str, cli: dict | None = None) -> Any:
    """A field with its help and its command-line options (argparse keywords)."""
    return field(default=default, metadata={"help": help_text, "cli": cli or {}})


@dataclass(frozen=True)
class BuildConfig:
    """Chunking, embedding, indexing and ingest options of a store build.

    In Python, ``embedder`` may also be an :class:`~siftlm.datastore.embedders.Embedder`
    object and ``tokenizer`` a fast tokenizer object.
    """

    embedder: str | Embedder = _option(
        DEFAULT_EMBEDDER,
        "sentence-transformers name or folder, or causal:<folder> (an LM, mean-pooled)",
    )
    tokenizer: Any = _option(
        DEFAULT_TOKENIZER,
        "the language model's tokenizer (folder or hub name); chunks are cut by its tokens",
    )
    max_tokens: int | None = _option(
        None,
        "tokens per chunk, >= 1 (default: the tokenizer's maximum length)",
        {"type": int, "metavar": "N"},
    )
    index: str = _option(
        "flat",
        "Faiss index: flat (exact), ivf or hnsw (approximate), or any Faiss factory string, "
        "e.g. 'HNSW32', 'IVF4096,PQ64', 'OPQ16,IVF1024,PQ16' (trained on a sample)",
    )
    dtype: str = _option("float16", "how the vectors are stored", {"choices": DTYPES})
    batch_size: int = _option(32, "texts per forward pass of the embedder", {"type": int})
    shard_size: int = _option(
        DEFAULT_SHARD_SIZE, "chunks per resumable shard of embeddings", {"type": int}
    )
    recall_target: float = _option(
        0.95,
        "recall@10 against exact search that an approximate index is tuned to, in (0, 1]",
        {"type": float},
    )
    text_field: str = _option("text", "column holding the text (JSONL, Parquet, datasets)")
    id_field: str = _option("id", "column holding the document id (a row without one: file:row)")
    domain_field: str = _option(
        "domain", "column holding the domain (a row without one: the file's name)"
    )
    split: str | None = _option(None, "split of a saved DatasetDict")
    precomputed: str | PrecomputedEmbeddings | None = _option(
        "auto",
        "vectors reused by chunk text if made with the same embedder: 'auto' (the shipped "
        "file, for the embedded corpus), None (embed everything) or PrecomputedEmbeddings",
        {
            "flag": "--no-precomputed",
            "action": "store_const",
            "const": None,
            "help": "embed everything, ignoring the shipped precomputed embeddings",
        },
    )
    ray: bool | str = _option(
        False,
        "embed on a Ray cluster with Ray Data (an actor per GPU, or per CPU but one): at "
        "ADDRESS, or by ray.init()'s default (RAY_ADDRESS or a new local instance); needs "
        "siftlm[ray]",
        {"nargs": "?", "const": True, "metavar": "ADDRESS"},
    )
    show_progress: bool = _option(
        True,
        "progress bars",
        {"flag": "--no-progress", "action": "store_false", "help": "no progress bars"},
    )

    def __post_init__(self) -> None:
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise ValueError(
                f"max_tokens must be a positive number of tokens (or None for the "
                f"tokenizer's maximum), got {self.max_tokens!r}"
            )
        if self.index not in INDEX_KINDS:
            from siftlm.datastore.factory import check_spec

            check_spec(self.index)  # a Faiss factory string: fail now, not after embedding
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        for name in ("batch_size", "shard_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        recall = self.recall_target
        if isinstance(recall, bool) or not isinstance(recall, int | float):
            raise ValueError(f"recall_target must be a number in (0, 1], got {recall!r}")
        if not (math.isfinite(recall) and 0 < recall <= 1):
            raise ValueError(f"recall_target must be in (0, 1], got {recall!r}")
        for name in ("text_field", "id_field", "domain_field"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a column name, got {getattr(self, name)!r}")
        if isinstance(self.precomputed, str) and self.precomputed != "auto":
            raise ValueError(
                f"precomputed must be 'auto', None or PrecomputedEmbeddings, got {self.precomputed!r}"
            )
        if isinstance(self.embedder, str) and not self.embedder.strip():
            raise ValueError("embedder must name a model, got an empty string")

    def replace(self, **changes: Any) -> BuildConfig:
        """A copy with ``changes`` (validated); unknown names are refused, naming them."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(f"unknown build option(s) {', '.join(unknown)}; known: {known}")
        return dataclasses.replace(self, **changes) if changes else self
