"""Held-out protocols: which memory sequences a document may not learn from, and which
part of it is the query.

- ``exclude="same-source"``: no sequence from the document's source unit. In the
  embedded corpus a long source file is cut into parts with ids ``<domain>/<key>#<part>``;
  the source unit is the id before ``#`` (``source_unit``), so another part of the same
  file in memory is excluded. Memory chunks carry the id of the document they were cut
  from, so a chunk is excluded when its document's source unit is the prompt's.
- ``exclude="same-domain"``: leave-one-domain-out, no sequence of the document's domain.
- ``query="first-half"``: the first half of the document's tokens is the query (known at
  test time), and only the second half is scored.

Exclusion happens at search time (``MemoryLike.search(..., exclude=ids)``); stores are
never rebuilt. ``Exclusions`` computes the id sets of a memory; ``exclusions_for`` keeps
one per memory object, so that the trainers of several methods over one datastore (a
bench) group its ids once.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from typing import Any

import numpy as np

EXCLUDE_MODES: tuple[str, ...] = ("same-source", "same-domain")
QUERY_MODES: tuple[str, ...] = ("document", "first-half")


def source_unit(doc_id: str) -> str:
    """The source unit of a document id: the id without its ``#part`` suffix."""
    return str(doc_id).split("#", 1)[0]


class Exclusions:
    """The chunk ids of ``memory`` per source unit and per domain.

    ``memory`` must have ``doc_ids`` and ``domains``: one entry per sequence, by id (a
    ``Datastore`` and a ``ListMemory`` have both).
    """

    def __init__(self, memory: Any) -> None:
        doc_ids = getattr(memory, "doc_ids", None)
        domains = getattr(memory, "domains", None)
        if doc_ids is None or domains is None:
            raise TypeError(
                f"{type(memory).__name__} has no per-sequence doc_ids/domains, which the "
                "held-out protocols (exclude=...) need"
            )
        self._by_source = _group(source_unit(d) for d in doc_ids)
        self._by_domain = _group(domains)

    def ids(self, mode: str, doc_id: str | None, domain: str | None) -> np.ndarray:
        """Sorted int64 ids that a document (``doc_id``, ``domain``) may not use."""
        if mode == "same-source":
            if doc_id is None:
                raise ValueError("exclude='same-source' needs the document's doc_id")
            return self._by_source.get(source_unit(doc_id), _EMPTY)
        if mode == "same-domain":
            if domain is None:
                raise ValueError("exclude='same-domain' needs the document's domain")
            return self._by_domain.get(domain, _EMPTY)
        raise ValueError(f"unknown exclude mode {mode!r} (choose from {', '.join(EXCLUDE_MODES)})")


_EMPTY = np.zeros(0, dtype=np.int64)
# one Exclusions per live memory object (dropped with it); the lock makes concurrent
# trainers (the server's threads) build it once
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def exclusions_for(memory: Any) -> Exclusions:
    """The ``Exclusions`` of ``memory``, made on first use and shared by every caller
    while ``memory`` lives. A memory's ``doc_ids`` and ``domains`` must not change after
    that (stores and ``ListMemory`` never change them). A memory that cannot be weakly
    referenced or hashed gets a fresh, uncached ``Exclusions``."""
    with _CACHE_LOCK:
        try:
            found = _CACHE.get(memory)
        except TypeError:  # not weakly referenceable, or not hashable
            return Exclusions(memory)
        if found is None:
            found = _CACHE[memory] = Exclusions(memory)
        return found


def _group(keys) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return {key: np.asarray(ids, dtype=np.int64) for key, ids in groups.items()}


def check_enough_left(n_excluded: int, k: int, remaining: int, where: str) -> None:
    """ValueError when excluding ``n_excluded`` leaves fewer than ``k`` of ``where``
    (e.g. "the store's 30391 chunks"); ``remaining`` is what is left."""
    if remaining < k:
        raise ValueError(
            f"only {remaining} of {where} remain after excluding {n_excluded}; "
            f"cannot return k={k} candidates (lower k)"
        )


def split_half(tokens: list[int]) -> int:
    """The first token of the second half: ``len(tokens) // 2`` (the first half is the
    shorter one for an odd count). Needs at least 2 tokens."""
    if len(tokens) < 2:
        raise ValueError(f"query='first-half' needs a text of at least 2 tokens, got {len(tokens)}")
    return len(tokens) // 2


def first_half(tokenizer, text: str, tokens: list[int]) -> tuple[int, str]:
    """Where ``text`` is cut for ``query="first-half"``: (the first scored token, the
    first half's text).

    The cut is at ``len(tokens) // 2``, moved right by at most a few tokens until the
    decoded first half is a prefix of ``text`` (a byte-level token may end inside a
    multi-byte character), so that the second half's bytes are exactly the rest.
    """
    cut = split_half(tokens)
    for position in range(cut, min(cut + 8, len(tokens))):
        prefix = tokenizer.decode(tokens[:position], clean_up_tokenization_spaces=False)
        if prefix and text.startswith(prefix):
            return position, prefix
    raise ValueError(
        "cannot cut the text into halves at a token boundary: the tokenizer does not "
        "decode its first tokens back to a prefix of the text"
    )
