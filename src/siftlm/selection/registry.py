"""Selection methods as scoring rules, found by name.

A method is a small scoring rule plus a small state: given the shared `Posterior`, it
scores every candidate of every prompt, (B, K), larger is better. The greedy loop
(`siftlm.selection.greedy`) is written once: it takes the argmax, conditions the posterior
on the pick and lets the method update its state. New methods subclass `Method` and are
decorated with `@register`.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from siftlm.selection.posterior import Posterior

_REGISTRY: dict[str, type[Method]] = {}


class Method(ABC):
    """A greedy selection rule.

    Class attributes:
        name: the name `select(method=...)` finds it by.
        repeats: None if the caller's `distinct` decides whether a candidate may be picked
            again, False if the method never repeats a pick, True if it must be able to.
        copies_score_alike: give exact-duplicate candidates the score of their first copy,
            so that ties between duplicates go to the lowest index (off for `random`).
        posterior_only: the method keeps no state and its `scores` only read the
            posterior's attributes and `gain()` (sift, nn, nn-f, us). Such methods also run
            on the single-prompt CPU path (`siftlm.selection.single`), where those are
            numpy arrays.
    """

    name: ClassVar[str]
    repeats: ClassVar[bool | None] = None
    copies_score_alike: ClassVar[bool] = True
    posterior_only: ClassVar[bool] = False

    def start(self, posterior: Posterior, seed: int) -> Any:
        """The method's initial state (None unless it keeps one).

        A method that plans all its picks at once (e.g. `hull`) returns the plan here
        (`posterior.capacity` is n) and replays it through `scores`.
        """
        return None

    @abstractmethod
    def scores(self, posterior: Posterior, state: Any) -> torch.Tensor:
        """(B, K) float64 score of picking each candidate next; the argmax is picked."""

    def update(
        self, posterior: Posterior, state: Any, picks: torch.Tensor, column: torch.Tensor
    ) -> Any:
        """New state after `picks` (B,), given the prior kernel column k(·, pick) (B, K).

        Called after the posterior was conditioned on the picks.
        """
        return state


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make `cls` available to `select` under `cls.name`."""
    if cls.name in _REGISTRY:
        raise ValueError(f"a selection method named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> tuple[str, ...]:
    """Names of the registered selection methods, in registration order."""
    return tuple(_REGISTRY)


def get_method(method: str | Method) -> Method:
    """The method instance for a name (case-insensitive, '_' for '-') or an instance.

    Raises:
        ValueError: unknown name; the message lists the known ones and the closest match.
    """
    if isinstance(method, Method):
        return method
    if not isinstance(method, str):
        raise ValueError(f"method must be a name or a Method instance, got {type(method).__name__}")
    key = method.strip().lower().replace("_", "-")
    if key in _REGISTRY:
        return _REGISTRY[key]()
    known = ", ".join(_REGISTRY)
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown selection method {method!r}; known methods: {known}.{hint}")
