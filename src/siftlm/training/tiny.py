"""Moved to ``siftlm.testing``; this name stays for existing imports."""

from siftlm.testing import (  # noqa: F401
    SPECIAL,
    ngram_embedder,
    single_thread,
    tiny_gpt2,
    tiny_llama,
    tiny_tokenizer,
)
