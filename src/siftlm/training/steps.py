"""The optimizer and the gradient step of test-time training.

A selected sequence is cut with the same rolling windows as the evaluation
(``siftlm.evaluation.rolling_windows``): one window when it fits the context, else
one per chunk of ``max_length`` tokens, each token trained on once. One window is one
gradient step with batch size 1: the mean cross-entropy of its scored tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from siftlm.evaluation.bpb import Window, model_device
from siftlm.training.config import TTTConfig


def make_optimizer(parameters: Sequence[nn.Parameter], config: TTTConfig) -> torch.optim.Optimizer:
    """A fresh optimizer (no state) over ``parameters``; one per prompt."""
    if config.optimizer == "adam":
        return torch.optim.Adam(
            parameters, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            parameters, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay
        )
    return torch.optim.SGD(parameters, lr=config.lr, weight_decay=config.weight_decay)


def train_step(
    model: nn.Module,
    window: Window,
    optimizer: torch.optim.Optimizer,
    parameters: Sequence[nn.Parameter],
    grad_clip: float | None,
) -> float:
    """One step on the scored tokens of ``window``; returns the loss (mean nats/token)."""
    ids = torch.tensor(
        [window.context + window.continuation], dtype=torch.long, device=model_device(model)
    )
    n_scored = len(window.continuation)
    inputs = ids[:, :-1]  # unpadded: the mask says so (the prefix token may be the pad id)
    logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits[0, -n_scored:]
    loss = F.cross_entropy(logits.float(), ids[0, -n_scored:])
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
