"""Pretraining data: texts -> one token stream -> batches of blocks, and validation bpb.

Split out of ``siftlm.models.pretrain`` (which re-exports these names). Batch ``step``
is a function of (seed, step) only, so the data position of a resumed run is its step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def read_jsonl_texts(paths: Sequence[str]) -> list[str]:
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts.extend(json.loads(line)["text"] for line in handle if line.strip())
    return texts


def load_texts(config: Any) -> tuple[list[str], list[str], str]:
    """Training and validation texts, and a description of their source
    (``config``: a ``PretrainConfig``)."""
    if config.train_files:
        train = read_jsonl_texts(config.train_files)
        val = read_jsonl_texts(config.val_files) if config.val_files else []
        source = f"files {config.train_files}"
    else:
        from siftlm.data import load_corpus

        train = [doc.text for doc in load_corpus("pretrain")]
        val = [doc.text for doc in load_corpus("validation")]
        source = "siftlm corpus: split 'pretrain' (validation bpb on split 'validation')"
    if config.max_train_docs is not None:
        train = train[: config.max_train_docs]
    if not train:
        raise ValueError("no training documents")
    return train, val, source


def tokenize_stream(tokenizer: Any, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """All texts as one uint16/uint32 token stream, eos after each, cached by content."""
    digest = hashlib.sha256()
    digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    cache = cache_dir / f"tokens-{digest.hexdigest()[:16]}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    eos = tokenizer.eos_token_id
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.uint32
    pieces = []
    batch = 256
    for start in range(0, len(texts), batch):
        encoded = tokenizer(
            list(texts[start : start + batch]), add_special_tokens=False, verbose=False
        )
        for ids in encoded["input_ids"]:
            pieces.append(np.asarray([*ids, eos], dtype=dtype))
    stream = np.concatenate(pieces)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, stream)
        os.replace(tmp, cache)
    return stream


class BlockSampler:
    """Batches of ``context``-token blocks; batch ``step`` is a function of (seed, step)."""

    def __init__(self, stream: np.ndarray, context: int, batch_size: int, seed: int):
        self.n_blocks = len(stream) // context
        if self.n_blocks < 1:
            raise ValueError(f"{len(stream)} tokens do not fill one block of {context}")
        self.blocks = stream[: self.n_blocks * context].reshape(self.n_blocks, context)
        self.batch_size = batch_size
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {
                epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)
            }
        return self._orders[epoch]

    def batch(self, step: int) -> torch.Tensor:
        rows = []
        for sample in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, index = divmod(sample, self.n_blocks)
            rows.append(self.blocks[self._order(epoch)[index]])
        return torch.from_numpy(np.stack(rows).astype(np.int64))


def token_byte_lengths(tokenizer: Any) -> np.ndarray:
    """UTF-8 bytes of every token id (byte-level BPE: one character per byte)."""
    lengths = np.zeros(len(tokenizer), dtype=np.int64)
    special = set(tokenizer.all_special_ids)
    for token, index in tokenizer.get_vocab().items():
        if index not in special:
            lengths[index] = len(token)
    return lengths


def validation_blocks(tokenizer: Any, texts: Sequence[str], context: int, n_docs: int):
    """The first ``context - 1`` tokens of the first ``n_docs`` texts, eos-prefixed."""
    eos = tokenizer.eos_token_id
    blocks = []
    for text in texts[:n_docs]:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"][: context - 1]
        if ids:
            blocks.append([eos, *ids])
    return blocks


@torch.no_grad()
def blocks_bpb(model: Any, blocks: list[list[int]], byte_lengths: np.ndarray) -> float:
    """Bits per byte of the tokens after the eos of each block (ratio of sums)."""
    model.eval()
    nll, n_bytes = 0.0, 0
    for block in blocks:
        ids = torch.tensor([block])
        inputs = ids[:, :-1]
        logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits[0]
        logits = logits.float()
        nll += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        n_bytes += int(byte_lengths[block[1:]].sum())
    model.train()
    return nll / (math.log(2) * max(n_bytes, 1))
