"""The per-prompt training loop: one step per rolling window of each selected sequence,
in selection order, with a fresh optimizer, the learning-rate warm-up, the proximal term
and the early stop on a known text (``TTTConfig`` options)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from siftlm.evaluation.bpb import rolling_windows
from siftlm.training.config import TTTConfig
from siftlm.training.steps import (
    Proximal,
    backward,
    make_optimizer,
    set_lr,
    train_step,
    update,
    warmup_factor,
)


class EarlyStop:
    """Stop when the loss of a known text rises; keep the weights of the best check.

    ``score()`` gives the known text's NLL under the current weights. ``check(step)``
    records it and returns True when it is higher than the best so far (then ``rewind``
    puts the best check's weights back).
    """

    def __init__(self, parameters: Sequence[nn.Parameter], score: Callable[[], float]) -> None:
        self.parameters = list(parameters)
        self.score = score
        self.best = float("inf")
        self.best_step = 0
        self.saved = [p.detach().clone() for p in self.parameters]

    def check(self, step: int) -> bool:
        loss = self.score()
        if loss < self.best:
            self.best, self.best_step = loss, step
            with torch.no_grad():
                for saved, parameter in zip(self.saved, self.parameters, strict=True):
                    saved.copy_(parameter)
            return False
        return True

    def rewind(self) -> None:
        with torch.no_grad():
            for saved, parameter in zip(self.saved, self.parameters, strict=True):
                parameter.copy_(saved)


def selected_windows(
    tokens: Sequence[Sequence[int]], prefix_id: int, max_length: int, ids: Sequence[int]
) -> tuple[list, list[tuple[int, int]]]:
    """The training windows of the selected sequences, in selection order, and a key per
    window: (the sequence's memory id, the window's position in it), equal for the
    windows of a sequence selected twice."""
    windows, keys = [], []
    for sequence, memory_id in zip(tokens, ids, strict=True):
        for position, window in enumerate(rolling_windows(sequence, prefix_id, max_length)):
            windows.append(window)
            keys.append((memory_id, position))
    return windows, keys


class GradientReuse:
    """Gradient reuse for repeated windows (HullFT's trick): the j-th time (from 0) a
    window is trained on, its gradient is computed when j % every == 0 and otherwise
    the one computed last for that window is used again (it was taken at older weights:
    an approximation that saves the forward and backward passes). A window's gradient
    is kept only while a later repeat may need it.
    """

    def __init__(self, keys: Sequence, every: int) -> None:
        self.every = every
        self.remaining: dict = {}
        for key in keys:
            self.remaining[key] = self.remaining.get(key, 0) + 1
        self.seen: dict = {}
        self.cache: dict = {}
        self.passes = 0  # forward and backward passes done

    def step(self, key, model, window, optimizer, parameters, grad_clip, proximal) -> None:
        occurrence = self.seen.get(key, 0)
        self.seen[key] = occurrence + 1
        self.remaining[key] -= 1
        if occurrence % self.every == 0 or key not in self.cache:
            backward(model, window)
            self.passes += 1
            if self.remaining[key] > 0:
                self.cache[key] = [_copy(p.grad) for p in parameters]
        else:
            for parameter, grad in zip(parameters, self.cache[key], strict=True):
                parameter.grad = _copy(grad)
        if self.remaining[key] == 0:
            self.cache.pop(key, None)
        update(optimizer, parameters, grad_clip, proximal)


def _copy(grad: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad is None else grad.detach().clone()


def run_steps(
    model: nn.Module,
    parameters: Sequence[nn.Parameter],
    windows: Sequence,
    keys: Sequence,
    config: TTTConfig,
    *,
    train_stage: Callable,
    after_step: Callable[[int], bool],
) -> int:
    """Train on ``windows``, one step each; returns the forward and backward passes done
    (fewer than the steps with ``config.gradient_reuse``).

    ``keys``: one per window, equal for repeats (``selected_windows``).
    ``train_stage()`` is a context manager timing the training work; ``after_step(s)``
    runs after step s and returns True to stop.
    """
    with train_stage():
        optimizer = make_optimizer(parameters, config)
        proximal = Proximal(parameters, config.proximal) if config.proximal > 0 else None
        reuse = GradientReuse(keys, config.gradient_reuse) if config.gradient_reuse else None
    steps = 0
    for key, window in zip(keys, windows, strict=True):
        with train_stage():
            model.train()
            set_lr(optimizer, config.lr * warmup_factor(steps + 1, config.warmup))
            if reuse is None:
                train_step(model, window, optimizer, parameters, config.grad_clip, proximal)
            else:
                reuse.step(key, model, window, optimizer, parameters, config.grad_clip, proximal)
        steps += 1
        if after_step(steps):
            break
    return steps if reuse is None else reuse.passes
