"""Byte-level BPE tokenizer trained with Hugging Face ``tokenizers``.

Byte level means every string maps to tokens and back without loss: the pre-tokenizer
maps each UTF-8 byte to one printable character, and nothing normalises the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

EOS_TOKEN = "<|endoftext|>"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 8192, model_max_length: int = 256
) -> Any:
    """Train a byte-level BPE tokenizer; returns a ``PreTrainedTokenizerFast``.

    ``<|endoftext|>`` is the only special token and serves as eos, bos, pad and unk.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + eos), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer: Any, folders: Sequence[str | Path]) -> None:
    """Save the same tokenizer files into every folder (created if needed)."""
    for folder in folders:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(folder))


def round_trips(tokenizer: Any, text: str) -> bool:
    """True when decoding the encoding gives back exactly the same bytes."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return decoded.encode("utf-8") == text.encode("utf-8")
