"""Tiny tokenizer, models and embedder made on the spot: for tests, examples and
benchmarks that must run without a download (public: ``siftlm.testing``).

Everything here runs on a CPU in milliseconds.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch

SPECIAL = "<|endoftext|>"

# A tiny corpus of three topics: memory texts are made of each topic's phrases
# (``topic_texts``) and the prompts reuse them, so that retrieval has something to find.
TOPICS: dict[str, tuple[str, ...]] = {
    "code": ("def add(a, b): return a + b", "for i in range(10): print(i)", "x = [1, 2, 3]"),
    "law": ("The court held that the contract", "the defendant shall pay damages", "appeal"),
    "math": ("Let x be a real number such that", "the integral of x squared is", "prime"),
}
PROMPTS: tuple[str, ...] = (
    "def add(a, b): return a + b and then print(i)",
    "The court held that the defendant shall pay damages on appeal.",
    "Let x be a real number; the integral of x squared is prime.",
)


def tiny_tokenizer(texts: Sequence[str], vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on ``texts``; BOS = EOS = ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=SPECIAL, eos_token=SPECIAL)


def tiny_gpt2(tokenizer, n_positions: int = 64, seed: int = 0):
    """A random 2-layer GPT-2 (with its default dropout) for ``tokenizer``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(config)


def tiny_llama(tokenizer, n_positions: int = 64, seed: int = 0):
    """A random 2-layer Llama (rotary positions: a non-persistent buffer) for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=n_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def ngram_embedder(dim: int = 64, n: int = 3) -> Callable[[list[str]], np.ndarray]:
    """Counts of hashed character n-grams: texts sharing words get similar vectors."""

    def embed(texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for start in range(max(len(text) - n + 1, 0)):
                vectors[row, zlib.crc32(text[start : start + n].encode()) % dim] += 1.0
        return vectors

    return embed


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: tiny models are fastest so, and up to
    100x slower when torch spreads them over the cores of a busy small machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def topic_texts(
    topics: Mapping[str, Sequence[str]] = TOPICS, per_topic: int = 8
) -> tuple[list[str], list[str]]:
    """(texts, domains): per topic, ``per_topic`` texts "{p[i]} {p[i + 1]} (note i)."
    of its phrases p (indices modulo their number), the topic as their domain."""
    texts, domains = [], []
    for domain, phrases in topics.items():
        for i in range(per_topic):
            first, second = phrases[i % len(phrases)], phrases[(i + 1) % len(phrases)]
            texts.append(f"{first} {second} (note {i}).")
            domains.append(domain)
    return texts, domains


def tiny_memory(
    texts: Sequence[str],
    domains: Sequence[str] | None = None,
    *,
    doc_ids: Sequence[str] | None = None,
    tokenizer: str | None = "tiny-bpe",
):
    """A ``ListMemory`` over ``texts`` with :func:`ngram_embedder` (recorded as
    "ngram-64"; ``tokenizer``: the tokenizer name its manifest records)."""
    from siftlm.training import ListMemory

    return ListMemory(
        texts,
        ngram_embedder(),
        domains=domains,
        doc_ids=doc_ids,
        embedder="ngram-64",
        tokenizer=tokenizer,
    )


def tiny_bench_parts(documents: Sequence, *, dim: int = 32, n_positions: int = 48):
    """(model, tokenizer, memory) for a benchmark over ``documents`` (``Document``-like:
    ``text``, ``domain``, ``id``): a :func:`tiny_tokenizer` trained on their texts, a
    :func:`tiny_gpt2` with ``n_positions``, and a ``ListMemory`` of the texts with their
    domains and ids, embedded by :func:`ngram_embedder` of dimension ``dim``."""
    from siftlm.training import ListMemory

    tokenizer = tiny_tokenizer([d.text for d in documents])
    model = tiny_gpt2(tokenizer, n_positions=n_positions)
    memory = ListMemory(
        [d.text for d in documents],
        ngram_embedder(dim=dim),
        domains=[d.domain for d in documents],
        doc_ids=[d.id for d in documents],
    )
    return model, tokenizer, memory
