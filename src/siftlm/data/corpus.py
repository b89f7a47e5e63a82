"""The embedded multi-domain corpus ("minipile"): documents, splits and the loader.

The corpus is committed under ``data/minipile/`` as one zstd-compressed Parquet file
per split, rows sorted by (domain, id). ``load_corpus`` reads one split, optionally
restricted to some domains, in that deterministic order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SPLITS: tuple[str, ...] = ("pretrain", "memory", "validation", "test")

# One name per source family; see data/SOURCES.md for what each holds.
DOMAINS: tuple[str, ...] = (
    "changelogs",
    "code_c",
    "code_python",
    "debian_docs",
    "dictionary",
    "fortunes",
    "glossary",
    "legal",
    "man_pages",
    "math",
    "python_docs",
    "shakespeare",
    "tech_docs",
    "wordnet",
)

COLUMNS: tuple[str, ...] = ("id", "domain", "source", "license", "text")

# Overridable so that tests (and users with a rebuilt corpus) can point elsewhere.
CORPUS_DIR_ENV = "SIFTLM_CORPUS_DIR"


@dataclass(frozen=True)
class Document:
    """One document of the corpus.

    ``source`` names the package and its version (``"dict-gcide 0.48.5+nmu2"``),
    ``license`` the license of that text (an SPDX-like short name).
    """

    id: str
    domain: str
    source: str
    license: str
    text: str


def default_corpus_dir() -> Path:
    """``$SIFTLM_CORPUS_DIR`` if set, else ``data/minipile`` of the source checkout."""
    override = os.environ.get(CORPUS_DIR_ENV)
    if override:
        return Path(override)
    from siftlm.defaults import CORPUS_DIR

    return CORPUS_DIR


def split_path(split: str, corpus_dir: Path | None = None) -> Path:
    return (corpus_dir or default_corpus_dir()) / f"{split}.parquet"


def normalize_text(text: str) -> str:
    """The form in which two texts count as exact copies: whitespace runs collapsed."""
    return " ".join(text.split())


def text_key(text: str) -> str:
    """SHA-256 of the normalized text (what "exact copy" means in this corpus)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def _check_names(split: str, domains: Sequence[str] | None) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if isinstance(domains, str):
        raise ValueError(f"domains must be a sequence of names, not the string {domains!r}")
    for domain in domains or ():
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; known domains: {', '.join(DOMAINS)}")


@lru_cache(maxsize=8)
def _read_split(path: str, mtime_ns: int) -> tuple[Document, ...]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(COLUMNS))
    columns = [table.column(name).to_pylist() for name in COLUMNS]
    return tuple(Document(*row) for row in zip(*columns, strict=True))


def load_corpus(
    split: str,
    domains: Sequence[str] | None = None,
    *,
    corpus_dir: str | Path | None = None,
) -> list[Document]:
    """The documents of one split, sorted by (domain, id).

    Args:
        split: one of ``SPLITS``.
        domains: restrict to these domains (names from ``DOMAINS``); all if None.
        corpus_dir: a folder with ``<split>.parquet`` files; the committed corpus if None.

    Raises:
        ValueError: an unknown split or domain (the message lists the known ones).
        FileNotFoundError: the split file is missing.
    """
    _check_names(split, domains)
    path = split_path(split, Path(corpus_dir) if corpus_dir is not None else None)
    if not path.is_file():
        raise FileNotFoundError(
            f"corpus split file {path} not found (build it with `siftlm corpus build`)"
        )
    documents = _read_split(str(path), path.stat().st_mtime_ns)
    if domains is None:
        return list(documents)
    wanted = set(domains)
    return [document for document in documents if document.domain in wanted]
