"""The generated tokens as they come: counted, decoded, cut at stop strings, streamed."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer


class Cancelled(Exception):
    """A job stopped because its client went away or its time ran out."""


class TokenSink(BaseStreamer):
    """The ``streamer`` of one ``model.generate`` call.

    Keeps the generated ids (``ids``; the first ``put``, the prompt, is skipped), decodes
    the text so far, notes the first stop string (``stopped``; ``criteria()`` then ends
    the generation), and passes each new piece of text to ``on_text``. Text that could be
    the start of a stop string or an incomplete UTF-8 character is held back until it is
    known. Raises ``Cancelled`` from ``put`` once ``cancel`` is set, which ends
    ``generate`` (and the trainer restores the model).
    """

    def __init__(
        self,
        tokenizer,
        stop: tuple[str, ...],
        on_text: Callable[[str], None] | None,
        cancel: threading.Event,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.on_text = on_text
        self.cancel = cancel
        self.ids: list[int] = []
        self.stopped = False
        self._sent = 0
        self._prompt_seen = False
        self._ended = False

    def put(self, value: torch.Tensor) -> None:
        if self.cancel.is_set():
            raise Cancelled
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        if self.stop or self.on_text is not None:
            self._advance(final=False)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._advance(final=True)

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def cut(self, text: str) -> tuple[str, bool]:
        """``text`` up to its first stop string, and whether it had one."""
        found = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return (text[: min(found)], True) if found else (text, False)

    def criteria(self) -> StoppingCriteriaList:
        """Stopping criteria for ``generate``: true once a stop string was generated."""
        return StoppingCriteriaList([_StopWhen(self)])

    def _advance(self, final: bool) -> None:
        text, stopped = self.cut(self.text())
        self.stopped = self.stopped or stopped
        if self.on_text is None:
            return
        safe = len(text)
        if not (final or stopped):
            hold = max((len(s) - 1 for s in self.stop), default=0)
            safe = max(len(text) - hold, self._sent)
            while safe > self._sent and text[safe - 1] == "\ufffd":  # a split character
                safe -= 1
        if safe > self._sent:
            self.on_text(text[self._sent : safe])
            self._sent = safe


class _StopWhen(StoppingCriteria):
    def __init__(self, sink: TokenSink) -> None:
        self.sink = sink

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.sink.stopped, dtype=torch.bool, device=input_ids.device
        )
