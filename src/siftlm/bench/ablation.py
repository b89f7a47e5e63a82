"""The memory a benchmark run searches under its ablation options.

``memory_fraction < 1``: a ``MemorySubset`` of the store (seeded by ``seed``).
``duplicates > 0``: a ``DuplicatedMemory`` over it, whose copies are made only for the
candidates that the run's documents retrieve (``candidate_pool``: the union of every
document's top ``k``, with the run's query and held-out exclusion), which is what those
documents would see with every copy made (exactly for exact copies; see
``siftlm.training.memory_copies``). Near copies are embedded on the first search and
cached in the results folder (``copies-near-<rate>-seed<seed>.npz``), so that workers and
resumed runs embed them once. The store on disk is never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from siftlm.bench.config import BenchConfig


def copies_cache(config: BenchConfig) -> Path:
    """Where a run's near copies' embeddings are cached."""
    return (
        Path(config.out)
        / f"copies-{config.duplicate_kind}-{config.duplicates:g}-seed{config.seed}.npz"
    )


def ablated_memory(config: BenchConfig, store: Any, documents: list, tokenizer: Any) -> Any:
    """``store`` as ``config``'s ablation options see it (itself when none is set)."""
    if store is None:
        return None
    from siftlm.training.memory_copies import DuplicatedMemory
    from siftlm.training.memory_subset import MemorySubset

    memory = store
    if config.memory_fraction < 1:
        memory = MemorySubset(memory, config.memory_fraction, seed=config.seed)
    if config.duplicates > 0:
        if config.query_vectors != "one":
            raise ValueError(
                "--duplicates makes copies for one-vector queries' candidates only: use "
                "--query-vectors one"
            )
        memory = DuplicatedMemory(
            memory,
            config.duplicates,
            config.duplicate_kind,
            seed=config.seed,
            pool=candidate_pool(config, memory, documents, tokenizer),
            cache=copies_cache(config) if config.duplicate_kind == "near" else None,
            copies=config.duplicate_copies,
        )
    return memory


def query_text(config: BenchConfig, document: Any, tokenizer: Any) -> str:
    """The text a document's prompt is embedded from under ``config.query``."""
    if config.query != "first-half":
        return document.text
    from siftlm.evaluation.bpb import encode
    from siftlm.training.heldout import first_half

    return first_half(tokenizer, document.text, encode(tokenizer, document.text))[1]


def candidate_pool(config: BenchConfig, memory: Any, documents: list, tokenizer: Any):
    """Sorted int64 union of the top ``config.k`` ids of every document's query in
    ``memory`` (embedded one by one, as the trainer does, with ``config.exclude``)."""
    from siftlm.training.heldout import Exclusions

    exclusions = Exclusions(memory) if config.exclude is not None else None
    pool: set[int] = set()
    for document in documents:
        query = np.asarray(memory.embed([query_text(config, document, tokenizer)]), np.float32)
        if exclusions is None:
            hits = memory.search(query, config.k)
        else:
            excluded = exclusions.ids(config.exclude, document.id, document.domain)
            hits = memory.search(query, config.k, exclude=excluded)
        pool.update(int(i) for i in np.asarray(hits.ids[0]).tolist())
    return np.array(sorted(pool), dtype=np.int64)
