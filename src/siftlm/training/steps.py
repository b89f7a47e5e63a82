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


def warmup_factor(step: int, warmup: int) -> float:
    """The learning-rate factor of step ``step`` (from 1): min(1, step / warmup)."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class Proximal:
    """The proximal term μ/2 ||W - W_0||^2 towards the weights at the prompt's start.

    Its gradient μ (W - W_0) is added to each parameter's gradient after the backward
    pass of the language-model loss (before clipping), which equals back-propagating
    the sum of both terms.
    """

    def __init__(self, parameters: Sequence[nn.Parameter], mu: float) -> None:
        self.mu = mu
        self.anchor = [p.detach().clone() for p in parameters]

    def add_gradient(self, parameters: Sequence[nn.Parameter]) -> None:
        with torch.no_grad():
            for parameter, anchor in zip(parameters, self.anchor, strict=True):
                if parameter.grad is not None:
                    parameter.grad.add_(parameter.detach() - anchor, alpha=self.mu)


def backward(model: nn.Module, window: Window) -> float:
    """Forward and backward pass on the scored tokens of ``window`` (gradients accumulate
    in ``.grad``); returns the loss (mean nats/token)."""
    ids = torch.tensor(
        [window.context + window.continuation], dtype=torch.long, device=model_device(model)
    )
    n_scored = len(window.continuation)
    logits = model(input_ids=ids[:, :-1]).logits[0, -n_scored:]
    loss = F.cross_entropy(logits.float(), ids[0, -n_scored:])
    loss.backward()
    return loss.item()


def update(
    optimizer: torch.optim.Optimizer,
    parameters: Sequence[nn.Parameter],
    grad_clip: float | None,
    proximal: Proximal | None = None,
) -> None:
    """The optimizer step from the gradients in ``.grad`` (plus the ``proximal`` term's,
    then clipped), and the gradients cleared."""
    if proximal is not None:
        proximal.add_gradient(parameters)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_step(
    model: nn.Module,
    window: Window,
    optimizer: torch.optim.Optimizer,
    parameters: Sequence[nn.Parameter],
    grad_clip: float | None,
    proximal: Proximal | None = None,
) -> float:
    """One step on the scored tokens of ``window`` (plus the ``proximal`` term, if any);
    returns the language-model loss (mean nats/token)."""
    loss = backward(model, window)
    update(optimizer, parameters, grad_clip, proximal)
    return loss
