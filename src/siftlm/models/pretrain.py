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
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siftlm.defaults import HOUSE_TOKENIZER
from siftlm.models.pretrain_data import (  # noqa: F401 - re-exported: their old home
    BlockSampler,
    blocks_bpb,
    load_texts,
    read_jsonl_texts,
    token_byte_lengths,
    tokenize_stream,
    validation_blocks,
)
from siftlm.models.sizes import SIZES

CHECKPOINT = "checkpoint.pt"
RESOLVED_CONFIG = "pretrain_config.json"
LOG = "log.jsonl"


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (saved as JSON next to the weights)."""

    out: str
    size: str = "small"
    tokenizer: str = HOUSE_TOKENIZER
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
            self.context = SIZES[self.size].context
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

    shape = SIZES[size]
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
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


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: temporary file, fsync, rename."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def check_same_run(saved: dict[str, Any], config: PretrainConfig) -> None:
    """Raise if a checkpoint's ``saved`` configuration differs from ``config`` in a field
    that changes the result (``OPERATIONAL_FIELDS`` may differ), naming each."""
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


def make_optimizer(model: Any, config: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on biases and layer norms)."""
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=config.betas,
        eps=1e-8,
    )


@dataclass
class _Run:
    """A run's state: what the checkpoint holds (model, optimizer, step, tokens, clock)
    and what the loop needs besides."""

    config: PretrainConfig
    out: Path
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    sampler: BlockSampler
    val_blocks: list[list[int]]
    byte_lengths: np.ndarray
    step: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.time)
    train_seconds: float = 0.0

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    def checkpoint(self) -> None:
        save_checkpoint(
            self.checkpoint_path,
            {
                "config": dataclasses.asdict(self.config),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
                "tokens": self.tokens,
                "started": self.started,
                "train_seconds": self.train_seconds,
            },
        )

    def resume(self) -> None:
        """Continue from the folder's checkpoint, if any (refused if another run's)."""
        if not self.checkpoint_path.is_file():
            return
        state = torch.load(self.checkpoint_path, weights_only=False)
        check_same_run(state["config"], self.config)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.tokens = state["step"], state["tokens"]
        self.started, self.train_seconds = state["started"], state["train_seconds"]
        print(
            f"resumed from {self.checkpoint_path} at step {self.step} ({self.tokens:,} tokens)",
            flush=True,
        )


def _prepare(config: PretrainConfig, out: Path) -> tuple[_Run, dict[str, Any]]:
    """Tokenizer, data, model and optimizer (seeded), and the resolved configuration."""
    from siftlm.models.loading import load_tokenizer

    tokenizer = load_tokenizer(config.tokenizer)
    context = int(config.context)
    train_texts, val_texts, source = load_texts(config)
    stream = tokenize_stream(tokenizer, train_texts, out.parent / "token-cache")
    sampler = BlockSampler(stream, context, config.batch_size, config.seed)
    byte_lengths = token_byte_lengths(tokenizer)
    val_blocks = validation_blocks(tokenizer, val_texts, context, config.eval_docs)
    torch.manual_seed(config.seed)
    model = build_model(config.size, len(tokenizer), tokenizer.eos_token_id, context)
    run = _Run(
        config, out, tokenizer, model, make_optimizer(model, config), sampler, val_blocks,
        byte_lengths,
    )  # fmt: skip
    resolved = dataclasses.asdict(config) | {
        "n_parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "data": source,
        "train_documents": len(train_texts),
        "train_tokens_available": int(len(stream)),
        "tokens_per_step": config.tokens_per_step,
    }
    return run, resolved


def _train_step(run: _Run) -> tuple[float, int, float]:
    """One optimizer step at the schedule's rate; returns (loss, tokens, lr)."""
    tick = time.time()
    lr = lr_at(progress_of(run.tokens, tick, run.started, run.config), run.step, run.config)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = run.sampler.batch(run.step)
    model = run.model
    loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), run.config.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.tokens += batch.numel()
    run.train_seconds += time.time() - tick
    return loss.item(), batch.numel(), lr


def _validate(run: _Run) -> float:
    val_bpb = blocks_bpb(run.model, run.val_blocks, run.byte_lengths)
    _log(
        run.out,
        {"step": run.step, "tokens": run.tokens, "val_bpb": val_bpb, "time": time.time()},
        f"step {run.step:6d}  validation bpb {val_bpb:.4f} ({len(run.val_blocks)} docs, "
        f"first {int(run.config.context) - 1} tokens each)",
    )
    return val_bpb


def _loop(run: _Run) -> None:
    """Steps until the schedule's progress reaches 1: logs every ``log_every`` steps,
    validates every ``eval_every``, checkpoints by steps and by time, and at the end."""
    config = run.config
    run.model.train()
    last_checkpoint = window_start = time.time()
    window_loss, window_steps, window_tokens = 0.0, 0, 0
    while progress_of(run.tokens, time.time(), run.started, config) < 1.0:
        loss, n_tokens, lr = _train_step(run)
        window_loss, window_steps = window_loss + loss, window_steps + 1
        window_tokens += n_tokens
        if run.step % config.log_every == 0:
            now = time.time()
            rate, mean_loss = (
                window_tokens / max(now - window_start, 1e-9),
                window_loss / window_steps,
            )
            record = {"step": run.step, "tokens": run.tokens, "loss": mean_loss, "lr": lr}
            _log(
                run.out,
                record | {"tokens_per_s": rate, "time": now},
                f"step {run.step:6d}  tokens {run.tokens:>11,}  loss {mean_loss:.4f}  "
                f"lr {lr:.2e}  {rate:,.0f} tok/s",
            )
            window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, now
        if run.val_blocks and run.step % config.eval_every == 0:
            _validate(run)
            window_start = time.time()
        if run.step % config.checkpoint_every == 0 or (
            time.time() - last_checkpoint > config.checkpoint_every_s
        ):
            run.checkpoint()
            last_checkpoint = time.time()
    run.checkpoint()


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train (or resume) the run in ``config.out``; returns the final summary."""
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run, resolved = _prepare(config, out)
    run.resume()
    (out / RESOLVED_CONFIG).write_text(json.dumps(resolved, indent=2) + "\n")
    print(
        f"{config.size}: {resolved['n_parameters']:,} parameters, "
        f"{resolved['train_tokens_available']:,} training tokens, "
        f"{config.tokens_per_step} tokens/step",
        flush=True,
    )
    _loop(run)
    val_bpb = blocks_bpb(run.model, run.val_blocks, run.byte_lengths) if run.val_blocks else None
    run.model.save_pretrained(str(out))
    run.tokenizer.save_pretrained(str(out))
    summary = resolved | {
        "steps": run.step,
        "tokens_seen": run.tokens,
        "train_seconds": run.train_seconds,
        "final_val_bpb_subset": val_bpb,
        "finished": time.time(),
    }
    (out / RESOLVED_CONFIG).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"done: {run.step} steps, {run.tokens:,} tokens, validation bpb {val_bpb}",
        file=sys.stderr,
        flush=True,
    )
    return summary
