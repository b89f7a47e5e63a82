"""The server's worker: one model replica, a bounded queue, one adaptation at a time.

``Engine.submit(job)`` queues a ``Job`` (a prompt, its ``TTTConfig`` and sampling
options) and returns a ``concurrent.futures.Future`` of its ``Completion``. A single
worker thread runs the jobs in arrival order, so the results of concurrent requests are
those of the same requests sent one at a time (every adaptation also starts from the
same seeded random state, ``TTTConfig.seed``). Setting ``job.cancel`` stops a job: before
it starts, between two training steps, or between two generated tokens; the trainer
restores the base model on the way out.

Per-request configurations share one trainer's saved weights: ``trainer_for`` returns a
shallow copy of the server's trainer with another ``config``, which is only allowed for
the fields in ``PER_REQUEST`` (those the trainer does not use at construction), so no
parameter is copied per request or per configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from siftlm.evaluation.bpb import encode
from siftlm.serve.tokens import Cancelled, TokenSink
from siftlm.training import GenerationResult, TestTimeTrainer, TTTConfig
from siftlm.training.config import BASE_METHOD

# TTTConfig fields a request may set: read per prompt, never at the trainer's construction.
PER_REQUEST: frozenset[str] = frozenset(
    {"method", "mode", "n", "k", "lambda_", "alpha", "distinct", "lr", "variance_gate", "seed"}
)
LONG_PROMPTS: tuple[str, ...] = ("truncate", "refuse")


class QueueFull(Exception):
    """More jobs than the queue holds are waiting or running."""


class PromptTooLong(ValueError):
    """The prompt does not fit the context and the server refuses to cut it."""


@dataclass
class Job:
    """One request for the worker.

    ``on_text(delta)``: called from the worker thread with each new piece of the
    completion (streaming), and with None when the job ends; None: not streamed.
    """

    prompt: str
    config: TTTConfig
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    on_text: Callable[[str | None], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self, _step: int = 0) -> None:
        """Raise ``Cancelled`` when the job was cancelled (the trainer's ``on_step``)."""
        if self.cancel.is_set():
            raise Cancelled


@dataclass(frozen=True)
class Completion:
    """What a job produced: ``text`` (cut before a stop string), ``finish_reason``
    ("stop": end of text or a stop string; "length": ``max_tokens`` reached), token
    counts, and the trainer's ``result`` (memory used, steps, variances, timings)."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    result: GenerationResult


class Engine:
    """One model replica behind a bounded queue of at most ``max_queue`` jobs (waiting
    or running).

    Args:
        trainer: the server's ``TestTimeTrainer``; its config is the default of every
            request. Requests may change the fields in ``PER_REQUEST``.
        max_queue: jobs accepted at once; one more raises ``QueueFull``.
        long_prompts: "truncate" (keep the end of a prompt that does not fit, and say so)
            or "refuse" (``PromptTooLong``).
    """

    def __init__(
        self, trainer: TestTimeTrainer, *, max_queue: int = 16, long_prompts: str = "truncate"
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if long_prompts not in LONG_PROMPTS:
            raise ValueError(f"long_prompts must be one of {LONG_PROMPTS}, got {long_prompts!r}")
        if trainer.config.trains or trainer.memory is None:
            self.trainer = trainer
        else:  # a base/context default: requests that fine-tune need saved weights
            self.trainer = TestTimeTrainer(
                trainer.model,
                trainer.tokenizer,
                trainer.memory,
                dataclasses.replace(trainer.config, method="sift", mode="finetune"),
            )
        self.config = trainer.config
        self.max_queue = max_queue
        self.long_prompts = long_prompts
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siftlm-serve")

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return self._pending

    @property
    def max_length(self) -> int:
        return self.trainer.max_length

    @property
    def store_size(self) -> int:
        return len(self.trainer.memory) if self.trainer.memory is not None else 0

    def submit(self, job: Job) -> Future:
        """Queue ``job``; raises ``QueueFull`` when ``max_queue`` jobs are pending."""
        with self._lock:
            if self._pending >= self.max_queue:
                raise QueueFull(f"{self._pending} requests are queued (the limit)")
            self._pending += 1
        future = self._executor.submit(self._run, job)
        future.add_done_callback(self._done)
        return future

    def close(self) -> None:
        """Stop accepting work; jobs not started are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _done(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    def trainer_for(self, config: TTTConfig) -> TestTimeTrainer:
        """The server's trainer with ``config`` (which may differ in ``PER_REQUEST`` only)."""
        if config == self.trainer.config:
            return self.trainer
        base = self.trainer.config
        changed = {
            f.name
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(base, f.name)
        }
        if not changed <= PER_REQUEST:
            raise ValueError(f"a request cannot change {sorted(changed - PER_REQUEST)}")
        if config.method != BASE_METHOD and self.trainer.memory is None:
            raise ValueError(f"method {config.method!r} needs a datastore; the server has none")
        trainer = copy.copy(self.trainer)  # shares the model, memory and saved weights
        trainer.config = config
        return trainer

    def _run(self, job: Job) -> Completion:
        try:
            job.check()
            return self._generate(job)
        finally:
            if job.on_text is not None:
                job.on_text(None)

    def _generate(self, job: Job) -> Completion:
        trainer = self.trainer_for(job.config)
        n_prompt = len(encode(trainer.tokenizer, job.prompt))
        room = trainer.max_length - job.max_tokens - 1  # the prefix token takes one
        if n_prompt > room and self.long_prompts == "refuse":
            raise PromptTooLong(
                f"the prompt has {n_prompt} tokens; with max_tokens={job.max_tokens} the "
                f"context of {trainer.max_length} tokens leaves room for {room}"
            )
        sink = TokenSink(trainer.tokenizer, job.stop, job.on_text, job.cancel)
        sampling = (
            {"do_sample": True, "temperature": job.temperature, "top_p": job.top_p}
            if job.temperature > 0
            else {"do_sample": False}
        )
        result = trainer.generate(
            job.prompt,
            max_new_tokens=job.max_tokens,
            on_step=job.check,
            streamer=sink,
            stopping_criteria=sink.criteria(),
            **sampling,
        )
        text, stopped = sink.cut(result.text)
        ended = bool(sink.ids) and sink.ids[-1] == trainer.tokenizer.eos_token_id
        finish = "stop" if stopped or ended or len(sink.ids) < job.max_tokens else "length"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=min(n_prompt, room),
            completion_tokens=len(sink.ids),
            result=result,
        )
