"""Pretraining of the house models: GPT-2 architecture, AdamW, warmup + cosine, resumable.

The run is a pure function of its configuration and the data, step by step:

- data: the documents are tokenized once, joined with ``<|endoftext|>`` after each, and
  cut into blocks of ``context`` tokens; epoch ``e`` visits the blocks in the order of
  ``permutation(seed, e)``; batch ``step`` holds global samples ``step*B .. step*B+B-1``.
  The data position is therefore the step number.
- checkpoints (``checkpoint.pt``, written to a temporary file then renamed, so a kill
  leaves either the old or the new one) hold model, optimizer, step, tokens seen, RNG
  state and the schedule's clock. A run started on a folder with a checkpoint resumes
  from it; without a deadline, a resumed run ends at the same weights, bit for bit, as
  an uninterrupted one (single-threaded CPU).
- schedule: linear warmup then cosine from ``lr`` down to ``lr * min_lr_ratio``, over a
  progress that is the larger of tokens/max_tokens and, when a deadline is given, the
  wall-clock fraction between the run's first start and the deadline. So a run that is
  slower than planned still decays fully and ends on time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siftlm.models.sizes import SIZES

CHECKPOINT = "checkpoint.pt"
RESOLVED_CONFIG = "pretrain_config.json"
LOG = "log.jsonl"


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (saved as JSON next to the weights)."""

    out: str
    size: str = "small"
    tokenizer: str = "models/house-small"
    context: int | None = None  # None: the size's context
    seed: int = 0
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    max_tokens: int | None = None
    deadline: float | None = None  # Unix time; see the module docstring
    eval_every: int = 100  # steps
    eval_docs: int = 64  # validation documents, first `context` tokens of each
    checkpoint_every: int = 100  # steps
    checkpoint_every_s: float = 300.0
    log_every: int = 10
    threads: int = 1
    train_files: list[str] = field(default_factory=list)  # JSONL {"text": ...}; else corpus
    val_files: list[str] = field(default_factory=list)
    max_train_docs: int | None = None

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; choose from {', '.join(SIZES)}")
        if self.max_tokens is None and self.deadline is None:
            raise ValueError("give max_tokens or a deadline (or both)")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        if self.context is None:
            self.context = SIZES[self.size][3]
        self.betas = tuple(self.betas)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * int(self.context)


# Fields that may change when a run is resumed; all others must match the checkpoint.
OPERATIONAL_FIELDS = frozenset(
    {
        "max_tokens",
        "deadline",
        "eval_every",
        "checkpoint_every",
        "checkpoint_every_s",
        "log_every",
        "threads",
        "out",
    }
)


def build_model(size: str, vocab_size: int, eos_id: int, context: int) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    n_layer, n_embd, n_head, _ = SIZES[size]
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        # No dropout: the runs see each token at most a few times.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return GPT2LMHeadModel(config)


def count_parameters(model: Any) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def lr_at(progress: float, step: int, config: PretrainConfig) -> float:
    """Learning rate after linear warmup (by step) and cosine decay (by progress)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * progress))


def progress_of(tokens: int, now: float, started: float, config: PretrainConfig) -> float:
    fractions = []
    if config.max_tokens is not None:
        fractions.append(tokens / config.max_tokens)
    if config.deadline is not None:
        span = max(config.deadline - started, 1e-9)
        fractions.append((now - started) / span)
    return max(fractions)


# ---------------------------------------------------------------- data


def read_jsonl_texts(paths: Sequence[str]) -> list[str]:
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts.extend(json.loads(line)["text"] for line in handle if line.strip())
    return texts


def load_texts(config: PretrainConfig) -> tuple[list[str], list[str], str]:
    """Training and validation texts, and a description of their source."""
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
        encoded = tokenizer(list(texts[start : start + batch]), add_special_tokens=False)
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
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: context - 1]
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


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: temporary file, fsync, rename."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def check_resumable(saved: dict[str, Any], config: PretrainConfig) -> None:
    current = dataclasses.asdict(config)
    current["betas"] = list(current["betas"])
    saved = dict(saved, betas=list(saved["betas"]))
    mismatched = [
        name
        for name in current
        if name not in OPERATIONAL_FIELDS and saved.get(name) != current[name]
    ]
    if mismatched:
        details = ", ".join(f"{n}: {saved.get(n)!r} -> {current[n]!r}" for n in mismatched)
        raise ValueError(
            f"{config.out} holds a checkpoint of a different run ({details}); "
            "use another --out or the same settings"
        )


# ---------------------------------------------------------------- the loop


def _log(out: Path, record: dict[str, Any], echo: str) -> None:
    print(echo, flush=True)
    with open(out / LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train (or resume) the run in ``config.out``; returns the final summary."""
    from siftlm.models.loading import load_tokenizer

    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(config.tokenizer)
    context = int(config.context)

    train_texts, val_texts, source = load_texts(config)
    stream = tokenize_stream(tokenizer, train_texts, out.parent / "token-cache")
    sampler = BlockSampler(stream, context, config.batch_size, config.seed)
    byte_lengths = token_byte_lengths(tokenizer)
    val_blocks = validation_blocks(tokenizer, val_texts, context, config.eval_docs)

    torch.manual_seed(config.seed)
    model = build_model(config.size, len(tokenizer), tokenizer.eos_token_id, context)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=config.betas,
        eps=1e-8,
    )
    step, tokens, started, train_seconds = 0, 0, time.time(), 0.0
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, weights_only=False)
        check_resumable(state["config"], config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, tokens = state["step"], state["tokens"]
        started, train_seconds = state["started"], state["train_seconds"]
        print(f"resumed from {checkpoint_path} at step {step} ({tokens:,} tokens)", flush=True)

    n_params = count_parameters(model)
    resolved = dataclasses.asdict(config) | {
        "n_parameters": n_params,
        "vocab_size": len(tokenizer),
        "data": source,
        "train_documents": len(train_texts),
        "train_tokens_available": int(len(stream)),
        "tokens_per_step": config.tokens_per_step,
    }
    (out / RESOLVED_CONFIG).write_text(json.dumps(resolved, indent=2) + "\n")
    print(
        f"{config.size}: {n_params:,} parameters, {len(stream):,} training tokens, "
        f"{config.tokens_per_step} tokens/step",
        flush=True,
    )

    def checkpoint() -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "config": dataclasses.asdict(config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "tokens": tokens,
                "started": started,
                "train_seconds": train_seconds,
            },
        )

    model.train()
    last_checkpoint = time.time()
    window_loss, window_tokens, window_start = 0.0, 0, time.time()
    val_bpb = None
    while progress_of(tokens, time.time(), started, config) < 1.0:
        tick = time.time()
        lr = lr_at(progress_of(tokens, tick, started, config), step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = sampler.batch(step)
        loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += batch.numel()
        train_seconds += time.time() - tick
        window_loss += loss.item()
        window_tokens += batch.numel()

        if step % config.log_every == 0:
            now = time.time()
            rate = window_tokens / max(now - window_start, 1e-9)
            mean_loss = window_loss / (window_tokens / batch.numel())
            _log(
                out,
                {
                    "step": step,
                    "tokens": tokens,
                    "loss": mean_loss,
                    "lr": lr,
                    "tokens_per_s": rate,
                    "time": now,
                },
                f"step {step:6d}  tokens {tokens:>11,}  loss {mean_loss:.4f}  lr {lr:.2e}  "
                f"{rate:,.0f} tok/s",
            )
            window_loss, window_tokens, window_start = 0.0, 0, now
        if val_blocks and step % config.eval_every == 0:
            val_bpb = blocks_bpb(model, val_blocks, byte_lengths)
            _log(
                out,
                {"step": step, "tokens": tokens, "val_bpb": val_bpb, "time": time.time()},
                f"step {step:6d}  validation bpb {val_bpb:.4f} ({len(val_blocks)} docs, "
                f"first {context - 1} tokens each)",
            )
            window_start = time.time()
        if step % config.checkpoint_every == 0 or (
            time.time() - last_checkpoint > config.checkpoint_every_s
        ):
            checkpoint()
            last_checkpoint = time.time()

    checkpoint()
    if val_blocks:
        val_bpb = blocks_bpb(model, val_blocks, byte_lengths)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    summary = resolved | {
        "steps": step,
        "tokens_seen": tokens,
        "train_seconds": train_seconds,
        "final_val_bpb_subset": val_bpb,
        "finished": time.time(),
    }
    (out / RESOLVED_CONFIG).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"done: {step} steps, {tokens:,} tokens, validation bpb {val_bpb}",
        file=sys.stderr,
        flush=True,
    )
    return summary
