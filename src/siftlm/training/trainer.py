"""The test-time training engine. For each prompt: embed it with the datastore's
embedder, retrieve ``k`` candidates, select ``n`` with ``siftlm.select``, take one
gradient step per selected sequence (per chunk for long ones) with a fresh optimizer,
evaluate or generate with the adapted model, restore the base model bitwise. ``adapt``
is that cycle as a context manager; ``evaluate`` and ``generate`` are built on it."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from siftlm.evaluation.bpb import (
    encode,
    model_device,
    prefix_token_id,
    resolve_max_length,
    score_tokens,
    utf8_bytes,
)
from siftlm.training.adaptation import Adaptation, select_for_prompt, step_config
from siftlm.training.config import BASE_METHOD, TTTConfig
from siftlm.training.context import fit_context
from siftlm.training.exclusive import exclusive
from siftlm.training.heldout import Exclusions, exclusions_for, first_half
from siftlm.training.loop import EarlyStop, run_steps, selected_windows
from siftlm.training.memory import MemoryLike, check_memory
from siftlm.training.results import DocumentResult, GenerationResult, Timings
from siftlm.training.weights import make_weights


def check_text(text: str, what: str = "prompt") -> str:
    if not isinstance(text, str):
        raise TypeError(f"the {what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"the {what} is empty or whitespace only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: no UTF-8 bytes, no bpb
        raise ValueError(
            f"the {what} is not valid Unicode: lone surrogate {text[error.start]!r} at "
            f"character {error.start} (decode bytes with errors='replace' or fix the source)"
        ) from None
    return text


class TestTimeTrainer:
    """Adapts ``model`` to each prompt and restores it afterwards.

    Args:
        model: a causal LM (``transformers``), on any device; its weights belong to the
            trainer while it is used (they are put back after every prompt).
        tokenizer: the model's tokenizer.
        memory: the datastore (``MemoryLike``); may be None for ``method="base"``.
        config: ``TTTConfig`` (default: SIFT, n=50, k=200, Adam lr 5e-5, full).
        tokenizer_name, embedder: names the datastore must have been built with (None:
            not checked by name). The tokenizer is always checked against the
            datastore's checksum of it, where the manifest has one.

    Raises ValueError for a datastore built with another tokenizer or embedder, for
    ``k`` larger than the datastore, or a ``max_length`` beyond the model's positions.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        model,
        tokenizer,
        memory: MemoryLike | None,
        config: TTTConfig | None = None,
        *,
        tokenizer_name: str | None = None,
        embedder: str | None = None,
    ) -> None:
        self.config = config = config if config is not None else TTTConfig()
        if config.method != BASE_METHOD:
            if memory is None:
                raise ValueError(f"method {config.method!r} needs a datastore")
            check_memory(memory, tokenizer, tokenizer_name=tokenizer_name, embedder=embedder)
            if config.k > len(memory):
                raise ValueError(
                    f"k={config.k} candidates exceed the datastore's {len(memory)} sequences"
                )
        self.model = model
        self.tokenizer = tokenizer
        self.memory = memory
        self.max_length = resolve_max_length(model, config.max_length)
        self.context_tokens = config.context_tokens or self.max_length // 2
        if config.mode == "context" and self.context_tokens >= self.max_length:
            raise ValueError(
                f"context_tokens={self.context_tokens} leaves no room for the text in a "
                f"window of {self.max_length} tokens"
            )
        self.prefix_id = prefix_token_id(tokenizer)
        self._weights = make_weights(model, config.finetune, config.lora) if config.trains else None
        device = model_device(model)
        self._cuda = device.type == "cuda"
        self._rng_devices = [device.index or 0] if self._cuda else []
        self._exclusions: Exclusions | None = None

    # -- one prompt --------------------------------------------------------------------

    @exclusive
    @contextmanager
    def adapt(
        self,
        prompt: str,
        *,
        on_step: Callable[[int], None] | None = None,
        exclude: Collection[int] | None = None,
        known: list[int] | None = None,
    ) -> Iterator[Adaptation]:
        """Select for ``prompt``, train, yield the adapted state, restore on exit.

        ``on_step(s)`` is called before the first step (s=0) and after each step s
        (its time counts as evaluation; raising from it stops the training and restores).
        ``exclude``: memory ids the selection may not use. ``known``: tokens of a text
        known at test time, for ``early_stop``. The base model is restored even on error.
        Inside, torch's random state is the prompt's own (``config.seed``); the caller's
        is put back on exit. One adaptation runs at a time in the process: other threads
        wait (``siftlm.training.exclusive``).
        """
        check_text(prompt)
        with torch.random.fork_rng(devices=self._rng_devices):
            torch.manual_seed(self.config.seed)
            adaptation = self._select(prompt, exclude)
            trains = self.config.trains and bool(adaptation.tokens) and not self._gate(adaptation)
            try:
                if trains:
                    self._train(adaptation, on_step, known)
                yield adaptation
            finally:
                if trains:
                    with self._stage(adaptation.timings, "restore"):
                        self._weights.restore()

    def _gate(self, adaptation: Adaptation) -> bool:
        """``variance_gate``: whether the selection leaves too much uncertainty to train."""
        lr = self.config.training_lr(adaptation.posterior_variance, adaptation.prior_variance)
        adaptation.gated = lr is None
        return adaptation.gated

    def _excluded(self, doc_id: str | None, domain: str | None) -> np.ndarray | None:
        """The memory ids a document may not use under ``config.exclude``."""
        if self.config.exclude is None or self.config.method == BASE_METHOD:
            return None
        if self._exclusions is None:
            self._exclusions = exclusions_for(self.memory)  # shared per memory
        return self._exclusions.ids(self.config.exclude, doc_id, domain)

    def evaluate(
        self,
        text: str,
        *,
        doc_id: str | None = None,
        domain: str | None = None,
        query: str | None = None,
        curve: bool | Collection[int] = False,
    ) -> DocumentResult:
        """Adapt to ``query`` (default: ``text`` itself) and score ``text``.

        ``doc_id``/``domain`` identify the document for ``config.exclude``. With
        ``config.query="first-half"`` the query is the first half of ``text``'s tokens
        and only the second half is scored (its tokens and bytes). ``curve=True`` also
        scores before training (step 0) and after every step; a collection of step
        numbers scores after those steps only (and after the last step, always).
        """
        check_text(text, "text")
        tokens = encode(self.tokenizer, text)
        start, n_bytes, query = self._query(text, tokens, query)
        known = tokens[:start] if self.config.early_stop else None
        points: dict[int, float] = {}
        on_step = None
        if curve is not False:
            wanted = None if curve is True else {int(step) for step in curve}

            def on_step(step: int) -> None:
                if wanted is None or step in wanted:
                    points[step] = self._score(tokens, start=start)

        exclude = self._excluded(doc_id, domain)
        with self.adapt(query, on_step=on_step, exclude=exclude, known=known) as adaptation:
            with self._stage(adaptation.timings, "evaluate"):
                nll, n_context = self._final_score(adaptation, tokens, start, points, on_step)
        return DocumentResult(
            doc_id=doc_id,
            domain=domain,
            method=self.config.name,
            nll_nats=nll,
            n_bytes=n_bytes,
            n_tokens=len(tokens) - start,
            steps=adaptation.steps,
            n_selected=len(adaptation.memory),
            n_context=n_context,
            prior_variance=adaptation.prior_variance,
            posterior_variance=adaptation.posterior_variance,
            selected_ids=tuple(item.id for item in adaptation.memory),
            timings=adaptation.timings,
            curve=tuple(points.values()) if on_step is not None else None,
            curve_steps=tuple(points) if on_step is not None else None,
            variances=adaptation.variances or None,
            kept_steps=adaptation.kept_steps,
            passes=adaptation.passes if adaptation.steps else None,
            n_targets=adaptation.n_targets,
        )

    def _query(self, text: str, tokens: list[int], query: str | None) -> tuple[int, int, str]:
        """(first scored token, bytes scored, query text) under ``config.query``."""
        if self.config.query == "first-half":
            if query is not None:
                raise ValueError("evaluate(query=...) and TTTConfig(query='first-half') conflict")
            start, prefix = first_half(self.tokenizer, text, tokens)
            return start, utf8_bytes(text) - utf8_bytes(prefix), prefix
        if query is not None:
            check_text(query, "query")
        return 0, utf8_bytes(text), text if query is None else query

    def _final_score(
        self, adaptation: Adaptation, tokens: list[int], start: int, points: dict, on_step
    ) -> tuple[float, int]:
        """The text's NLL under the adapted model, and the sequences in its context."""
        if on_step is not None and adaptation.steps and adaptation.kept_steps is None:
            if adaptation.steps not in points:  # fine-tuned, with a curve
                points[adaptation.steps] = self._score(tokens, start=start)
            return points[adaptation.steps], 0
        # at least context_tokens, or all that a short text leaves free
        room = max(self.context_tokens, self.max_length - 1 - len(tokens))
        context, placed = self._context(adaptation, room)
        nll = self._score(tokens, context, start=start)
        if on_step is not None and not adaptation.steps:  # the curve is this one point
            points[0] = nll
        return nll, len(placed)

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 64,
        on_step: Callable[[int], None] | None = None,
        **generate_kwargs,
    ) -> GenerationResult:
        """Adapt to ``prompt``, generate a continuation (greedy unless ``generate_kwargs``
        say otherwise), restore. A prompt longer than the context leaves room for is cut
        to its end, with a warning. ``on_step``: as in ``adapt``."""
        check_text(prompt)
        if self.config.exclude is not None or self.config.query != "document":
            raise ValueError(
                "generate() has no document to hold out: use a TTTConfig without "
                "exclude/query='first-half' (those are evaluation protocols)"
            )
        if not 1 <= max_new_tokens < self.max_length:
            raise ValueError(
                f"max_new_tokens must be in [1, {self.max_length - 1}], got {max_new_tokens}"
            )
        budget = self.max_length - max_new_tokens
        tokens = encode(self.tokenizer, prompt)
        truncated = len(tokens) + 1 > budget
        if truncated:
            warnings.warn(
                f"the prompt has {len(tokens)} tokens, more than the {budget - 1} that the "
                f"context of {self.max_length} leaves besides {max_new_tokens} new tokens; "
                "keeping its end",
                stacklevel=2,
            )
            tokens = tokens[len(tokens) - (budget - 1) :]
        inputs = [self.prefix_id, *tokens]
        with self.adapt(prompt, on_step=on_step) as adaptation:
            with self._stage(adaptation.timings, "evaluate"):
                context, _ = self._context(adaptation, budget - len(inputs))
                text = self._generate(context + inputs, max_new_tokens, generate_kwargs)
        return GenerationResult(
            prompt=self.tokenizer.decode(tokens) if truncated else prompt,
            text=text,
            method=self.config.name,
            memory=adaptation.memory,
            steps=adaptation.steps,
            prior_variance=adaptation.prior_variance,
            posterior_variance=adaptation.posterior_variance,
            truncated=truncated,
            timings=adaptation.timings,
        )

    # -- stages --------------------------------------------------------------------------

    @contextmanager
    def _stage(self, timings: Timings, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._cuda:  # GPU work is asynchronous: count it where it was launched
                torch.cuda.synchronize()
            setattr(timings, name, getattr(timings, name) + time.perf_counter() - start)

    def _select(self, prompt: str, exclude: Collection[int] | None = None) -> Adaptation:
        if self.config.method == BASE_METHOD:
            return Adaptation(method=self.config.name)
        return select_for_prompt(
            prompt, self.memory, self.tokenizer, self.config, exclude=exclude, stage=self._stage
        )

    def _train(
        self,
        adaptation: Adaptation,
        on_step: Callable[[int], None] | None,
        known: list[int] | None,
    ) -> None:
        """One step per rolling window of each selected sequence, in selection order,
        with a fresh optimizer (``siftlm.training.loop``)."""
        timings = adaptation.timings
        was_training = self.model.training
        with self._stage(timings, "train"):
            parameters = self._weights.begin()
        stopper = None
        if known is not None and self.config.early_stop:
            stopper = EarlyStop(parameters, lambda: self._score(known))
        with self._stage(timings, "evaluate"):
            if on_step is not None:
                on_step(0)
            if stopper is not None:
                stopper.check(0)
        windows, keys = selected_windows(
            adaptation.tokens,
            self.prefix_id,
            self.max_length,
            [item.id for item in adaptation.memory],
        )

        def after_step(step: int) -> bool:
            adaptation.steps = step
            with self._stage(timings, "evaluate"):
                if on_step is not None:
                    on_step(step)
                checked = stopper is not None and (
                    step % self.config.early_stop == 0 or step == len(windows)
                )
                return checked and stopper.check(step)

        try:
            adaptation.passes = run_steps(
                self.model,
                parameters,
                windows,
                keys,
                step_config(self.config, adaptation),
                train_stage=lambda: self._stage(timings, "train"),
                after_step=after_step,
            )
            if stopper is not None and stopper.best_step != adaptation.steps:
                stopper.rewind()
                adaptation.kept_steps = stopper.best_step
        finally:
            self.model.train(was_training)

    def _context(self, adaptation: Adaptation, room: int) -> tuple[list[int], list[int]]:
        """Context mode: the selected sequences that fit in ``room`` tokens."""
        if self.config.mode != "context" or not adaptation.tokens:
            return [], []
        return fit_context(adaptation.tokens, room, self.prefix_id)

    def _score(self, tokens: list[int], context: list[int] = (), start: int = 0) -> float:
        return score_tokens(
            self.model, tokens, self.prefix_id, self.max_length, context, start=start
        )[0]

    def _generate(self, input_ids: list[int], max_new_tokens: int, kwargs: dict) -> str:
        ids = torch.tensor([input_ids], dtype=torch.long, device=model_device(self.model))
        pad_id = self.tokenizer.pad_token_id
        kwargs = {
            "do_sample": False,
            "pad_token_id": pad_id if pad_id is not None else self.prefix_id,
            **kwargs,
        }
        was_training = self.model.training
        self.model.eval()
        # The input is one unpadded sequence that starts with the prefix token, which is
        # also the pad token of many models (bos = eos = pad): transformers would warn
        # that it looks padded. The pad id is passed to generate above, so the model's
        # own setting is not needed while generating.
        config_pad_id, self.model.config.pad_token_id = self.model.config.pad_token_id, None
        try:
            with torch.no_grad():
                output = self.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    **kwargs,
                )
        finally:
            self.model.config.pad_token_id = config_pad_id
            self.model.train(was_training)
        return self.tokenizer.decode(output[0, len(input_ids) :], skip_special_tokens=True)
