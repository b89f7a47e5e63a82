"""Chunking: documents -> sequences of at most L tokens of the language model's tokenizer.

As in Hardt & Sun (2024), a document is tokenized once and cut into consecutive windows
of L tokens. A chunk's text is the exact substring of the document between the start of
its first token and the start of the next chunk's first token, so the chunks of a
document concatenate back to the document (whitespace included) and no byte sequence
is cut inside a UTF-8 character. Re-tokenizing a window on its own can in rare cases
give one token more than inside the document (a merge across the cut, or a trailing
space); every chunk is therefore re-tokenized and, where needed, its end moved back a
token until it fits: each chunk has at most L tokens, as the training step will see it
(without special tokens).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from siftlm.datastore.ingest import SourceDocument
from siftlm.defaults import HOUSE_TOKENIZER as DEFAULT_TOKENIZER

_BATCH_DOCS = 256


class Chunk(NamedTuple):
    doc_id: str
    domain: str
    index: int  # position of the chunk within its document
    text: str
    n_tokens: int


def fast_tokenizer(spec: Any = DEFAULT_TOKENIZER):
    """The fast (Rust) tokenizer that chunking needs (for its offsets), from an object,
    or from a folder (relative ones also from the project root, so that
    ``models/house-small`` works from anywhere inside a checkout) or a hub name.

    Not :func:`siftlm.models.load_tokenizer`, which loads a language model's tokenizer
    by model name (house names, a pad token added) and does not take objects.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not isinstance(spec, str | Path):
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover
            Tokenizer = ()  # noqa: N806
        if isinstance(spec, Tokenizer):
            return PreTrainedTokenizerFast(tokenizer_object=spec)
        if not getattr(spec, "is_fast", False):
            raise ValueError("chunking needs a fast tokenizer (offsets); got a slow one")
        return spec
    path = Path(spec).expanduser()
    from siftlm import defaults

    project_root = defaults.PROJECT_ROOT
    if not path.is_absolute() and not path.exists() and (project_root / path).exists():
        path = project_root / path
    if path.exists():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    elif str(spec) == DEFAULT_TOKENIZER:
        raise FileNotFoundError(
            f"the house tokenizer {spec} is not there yet; train the house models first "
            "or pass --tokenizer"
        )
    else:
        tokenizer = _from_hub(str(spec), project_root)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {spec}: chunking needs a fast tokenizer (offsets)")
    return tokenizer


def _from_hub(name: str, project_root: Path):
    """A tokenizer by hub name, failing fast (with a suggestion) if it cannot be had."""
    from transformers import AutoTokenizer

    from siftlm.hub import check_hub_name
    from siftlm.models.loading import HOUSE_MODELS

    houses = [f"models/{house}" for house in HOUSE_MODELS]
    local_only = check_hub_name(
        name,
        "tokenizer",
        houses,
        filenames=("tokenizer_config.json", "tokenizer.json"),
        roots=[project_root],
    )
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=local_only)
    except OSError as error:
        raise FileNotFoundError(f"tokenizer {name!r}: {str(error).splitlines()[0]}") from error


def tokenizer_name(spec: Any, tokenizer) -> str:
    if isinstance(spec, str | Path):
        return str(spec)
    return str(getattr(tokenizer, "name_or_path", "") or type(spec).__name__)


def tokenizer_checksum(tokenizer) -> str:
    """``sha256:<16 hex>`` of the tokenizer's full definition (vocabulary, merges, rules)."""
    return (
        "sha256:" + hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]
    )


def default_max_tokens(tokenizer) -> int:
    limit = tokenizer.model_max_length
    if limit is None or limit > 1_000_000:
        raise ValueError("the tokenizer states no maximum length: pass max_tokens (--max-tokens)")
    return int(limit)


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens per text, without special tokens (the Rust tokenizer, batched in parallel)."""
    if not texts:
        return []
    backend = tokenizer.backend_tokenizer
    # encode_batch_fast (tokenizers >= 0.21) skips the offsets, which counting does not need
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [len(e.ids) for e in encode(list(texts), add_special_tokens=False)]


def chunk_documents(
    documents: Sequence[SourceDocument],
    tokenizer,
    max_tokens: int,
    progress: Callable[[int], None] | None = None,
) -> list[Chunk]:
    """All chunks of ``documents`` in document order; ``progress(n)`` after each n documents.

    Two passes of the Rust tokenizer, each over a large batch (parallel on all cores): the
    documents, to place the cuts, then all windows at once, to check that each fits.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    backend = tokenizer.backend_tokenizer
    chunks: list[Chunk] = []
    for start in range(0, len(documents), _BATCH_DOCS):
        batch = documents[start : start + _BATCH_DOCS]
        encoded = backend.encode_batch([doc.text for doc in batch], add_special_tokens=False)
        windows = [
            _windows(doc.text, e.offsets, max_tokens) for doc, e in zip(batch, encoded, strict=True)
        ]
        counts = iter(count_tokens(tokenizer, [piece for pieces in windows for piece in pieces]))
        for doc, pieces, encoding in zip(batch, windows, encoded, strict=True):
            piece_counts = [next(counts) for _ in pieces]
            if piece_counts and max(piece_counts) > max_tokens:  # rare: see the module doc
                starts = _token_starts(encoding.offsets)
                pieces, piece_counts = _chunk_exact(doc.text, starts, tokenizer, max_tokens)
            # a window of whitespace alone teaches nothing: dropped (the rest: 0, 1, ...)
            kept = [(p, c) for p, c in zip(pieces, piece_counts, strict=True) if p.strip()]
            chunks.extend(Chunk(doc.id, doc.domain, i, p, c) for i, (p, c) in enumerate(kept))
        if progress is not None:
            progress(len(batch))
    return chunks


def _token_starts(offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    starts = np.fromiter((begin for begin, _ in offsets), np.int64, len(offsets))
    return np.maximum.accumulate(starts) if len(starts) else starts


def _windows(text: str, offsets: Sequence[tuple[int, int]], max_tokens: int) -> list[str]:
    """Window j covers tokens [j*L, (j+1)*L): its text runs from the start of its first
    token (0 for the first window) to the start of the next window's first token (the
    end of the document for the last)."""
    n = len(offsets)
    if n == 0:
        return []
    cuts = [0]
    for t in range(max_tokens, n, max_tokens):
        cuts.append(max(cuts[-1], offsets[t][0]))
    cuts.append(len(text))
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _chunk_exact(
    text: str, starts: np.ndarray, tokenizer, max_tokens: int
) -> tuple[list[str], list[int]]:
    """Slow path for the rare document whose windows re-tokenize longer than L."""
    n = len(starts)
    pieces, counts = [], []
    first = 0
    while first < n:
        begin = 0 if first == 0 else int(starts[first])
        end_token = min(first + max_tokens, n)
        while True:
            end = int(starts[end_token]) if end_token < n else len(text)
            count = count_tokens(tokenizer, [text[begin:end]])[0]
            if count <= max_tokens or end_token == first + 1:
                break
            end_token -= 1
        pieces.append(text[begin:end])
        counts.append(count)
        first = end_token
    return pieces, counts


def __getattr__(name: str) -> Any:
    if name == "load_tokenizer":  # its name until the rename (one meaning per name)
        import warnings

        warnings.warn(
            "siftlm.datastore.chunking.load_tokenizer is now fast_tokenizer",
            DeprecationWarning,
            stacklevel=2,
        )
        return fast_tokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
