"""One adaptation at a time in a process: the lock ``TestTimeTrainer.adapt`` holds.

An adaptation changes the model's weights in place, and seeds torch's global random
state at its start (dropout while training, sampling while generating). Two threads
adapting at once (on one model, through one trainer or two, or on two models that
both draw from the global random state) would train and read each other's weights
or random numbers and return wrong results without an error. So every adaptation in
the process runs under one lock, held for the whole select/train/use/restore cycle:

- another thread *waits* for it (calls from several threads are serialised, and each
  returns what it would return alone);
- the same thread asking again (``generate`` inside an ``adapt`` block) gets a
  ``RuntimeError`` at once: it would otherwise wait for itself for ever, or adapt the
  already adapted model.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_LOCK = threading.Lock()  # not reentrant, by design
_owner: int | None = None  # thread id holding _LOCK


@contextmanager
def exclusive_adaptation() -> Iterator[None]:
    """Hold the process-wide adaptation lock inside the block (waits for other threads).

    Raises RuntimeError when the calling thread already holds it (a nested adaptation).
    """
    global _owner
    me = threading.get_ident()
    if _owner == me:
        raise RuntimeError(
            "this thread is already adapting a model (a call to adapt, evaluate or generate "
            "inside an adapt block); finish that adaptation first"
        )
    with _LOCK:
        _owner = me
        try:
            yield
        finally:
            _owner = None


def adaptation_lock() -> threading.Lock:
    """The lock itself, e.g. to pause every adaptation of the process while held."""
    return _LOCK


def exclusive(context_manager_function: Callable[P, AbstractContextManager[T]]):
    """Decorate a context-manager function so that its whole block runs under
    ``exclusive_adaptation`` (the lock is taken before it starts, freed after it exits)."""

    @functools.wraps(context_manager_function)
    @contextmanager
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        with exclusive_adaptation(), context_manager_function(*args, **kwargs) as value:
            yield value

    return wrapper
