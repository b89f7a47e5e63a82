"""The per-prompt training loop: one step per rolling window of each selected sequence,
in selection order, with a fresh optimizer, the learning-rate warm-up, the proximal term
and the early stop on a known text (``TTTConfig`` options)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from siftlm.evaluation.bpb import rolling_windows
from siftlm.training.config import TTTConfig
from siftlm.training.steps import Proximal, make_optimizer, set_lr, train_step, warmup_factor


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


def selected_windows(tokens: Sequence[Sequence[int]], prefix_id: int, max_length: int):
    """The training windows of the selected sequences, in selection order."""
    for sequence in tokens:
        yield from rolling_windows(sequence, prefix_id, max_length)


def run_steps(
    model: nn.Module,
    parameters: Sequence[nn.Parameter],
    windows,
    config: TTTConfig,
    *,
    train_stage: Callable,
    after_step: Callable[[int], bool],
) -> int:
    """Train on ``windows``, one step each; returns the steps taken.

    ``train_stage()`` is a context manager timing the training work; ``after_step(s)``
    runs after step s and returns True to stop.
    """
    with train_stage():
        optimizer = make_optimizer(parameters, config)
        proximal = Proximal(parameters, config.proximal) if config.proximal > 0 else None
    steps = 0
    for window in windows:
        with train_stage():
            model.train()
            set_lr(optimizer, config.lr * warmup_factor(steps + 1, config.warmup))
            train_step(model, window, optimizer, parameters, config.grad_clip, proximal)
        steps += 1
        if after_step(steps):
            break
    return steps
