"""The test-time training engine.

For each prompt: embed it with the datastore's embedder, retrieve ``k`` candidates,
select ``n`` with ``siftlm.select``, take one gradient step per selected sequence (per
chunk for long ones) with a fresh optimizer, then evaluate or generate with the adapted
model, then restore the base model bitwise. ``adapt`` is that cycle as a context
manager; ``evaluate`` and ``generate`` are built on it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from siftlm.evaluation.bpb import (
    encode,
    model_device,
    prefix_token_id,
    resolve_max_length,
    rolling_windows,
    score_tokens,
    utf8_bytes,
)
from siftlm.training.config import BASE_METHOD, TTTConfig
from siftlm.training.context import fit_context
from siftlm.training.memory import MemoryLike, check_memory
from siftlm.training.results import DocumentResult, GenerationResult, MemoryItem, Timings
from siftlm.training.steps import make_optimizer, train_step
from siftlm.training.weights import make_weights


@dataclass
class Adaptation:
    """What ``adapt`` did for one prompt (``steps`` and ``timings`` fill in as it goes).

    ``memory`` and ``tokens``: the selected sequences in selection order (a sequence
    picked twice appears twice), with their token ids.
    """

    method: str
    memory: tuple[MemoryItem, ...] = ()
    tokens: list[list[int]] = field(default_factory=list)
    prior_variance: float | None = None
    posterior_variance: float | None = None
    variances: tuple[float, ...] = ()
    steps: int = 0
    timings: Timings = field(default_factory=Timings)


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


def _as_list(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


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
        self._cuda = model_device(model).type == "cuda"

    # -- one prompt --------------------------------------------------------------------

    @contextmanager
    def adapt(
        self, prompt: str, *, on_step: Callable[[int], None] | None = None
    ) -> Iterator[Adaptation]:
        """Select for ``prompt``, train, yield the adapted state, restore on exit.

        ``on_step(s)`` is called before the first step (s=0) and after each step s
        (its time counts as evaluation). The base model is restored even on error.
        """
        check_text(prompt)
        torch.manual_seed(self.config.seed)
        adaptation = self._select(prompt)
        trains = self.config.trains and bool(adaptation.tokens)
        try:
            if trains:
                self._train(adaptation, on_step)
            yield adaptation
        finally:
            if trains:
                with self._stage(adaptation.timings, "restore"):
                    self._weights.restore()

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

        ``curve=True`` also scores ``text`` before training (step 0) and after every
        step; a collection of step numbers scores it after those steps only (and after
        the last step, always).
        """
        check_text(text, "text")
        if query is not None:
            check_text(query, "query")
        tokens = encode(self.tokenizer, text)
        points: dict[int, float] = {}
        on_step = None
        if curve is not False:
            wanted = None if curve is True else {int(step) for step in curve}

            def on_step(step: int) -> None:
                if wanted is None or step in wanted:
                    points[step] = self._score(tokens)

        with self.adapt(text if query is None else query, on_step=on_step) as adaptation:
            with self._stage(adaptation.timings, "evaluate"):
                if on_step is not None and adaptation.steps:  # fine-tuned, with a curve
                    if adaptation.steps not in points:
                        points[adaptation.steps] = self._score(tokens)
                    nll = points[adaptation.steps]
                    n_context = 0
                else:
                    # at least context_tokens, or all that a short text leaves free
                    room = max(self.context_tokens, self.max_length - 1 - len(tokens))
                    context, placed = self._context(adaptation, room)
                    nll = self._score(tokens, context)
                    n_context = len(placed)
                    if on_step is not None:  # nothing trained: the curve is this one point
                        points[0] = nll
        return DocumentResult(
            doc_id=doc_id,
            domain=domain,
            method=self.config.name,
            nll_nats=nll,
            n_bytes=utf8_bytes(text),
            n_tokens=len(tokens),
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
        )

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
        to its end, with a warning. ``on_step(t)`` is called after each training step
        (e.g. a progress bar)."""
        check_text(prompt)
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

    def _select(self, prompt: str) -> Adaptation:
        config = self.config
        adaptation = Adaptation(method=config.name)
        if config.method == BASE_METHOD:
            return adaptation
        from siftlm.selection import select

        timings = adaptation.timings
        with self._stage(timings, "embed"):
            query = np.asarray(self.memory.embed([prompt]), dtype=np.float32)
        with self._stage(timings, "search"):
            hits = self.memory.search(query, config.k)
        with self._stage(timings, "select"):
            selection = select(
                query[0],
                np.asarray(hits.embeddings[0], dtype=np.float32),
                config.n,
                method=config.method,
                lambda_=config.lambda_,
                alpha=config.alpha,
                distinct=config.distinct,
                seed=config.seed,
            )
            n_used = int(selection.steps)  # adaptive SIFT stops early
            positions = [int(i) for i in _as_list(selection.indices)[:n_used]]
            adaptation.variances = tuple(float(v) for v in _as_list(selection.variances)[:n_used])
        ids, scores = _as_list(hits.ids[0]), _as_list(hits.scores[0])
        doc_ids = getattr(hits, "doc_ids", None)
        adaptation.memory = tuple(
            MemoryItem(
                id=int(ids[p]),
                domain=hits.domains[0][p],
                score=float(scores[p]),
                text=hits.texts[0][p],
                doc_id=str(doc_ids[0][p]) if doc_ids is not None else None,
            )
            for p in positions
        )
        adaptation.prior_variance = float(selection.prior_variances)
        adaptation.posterior_variance = (
            adaptation.variances[-1] if adaptation.variances else adaptation.prior_variance
        )
        # tokens for training, or for the context in context mode
        with self._stage(timings, "train" if config.trains else "evaluate"):
            adaptation.tokens = [encode(self.tokenizer, item.text) for item in adaptation.memory]
        return adaptation

    def _train(self, adaptation: Adaptation, on_step: Callable[[int], None] | None) -> None:
        """One step per rolling window of each selected sequence, in selection order,
        with a fresh optimizer."""
        timings = adaptation.timings
        was_training = self.model.training
        with self._stage(timings, "train"):
            parameters = self._weights.begin()
            optimizer = make_optimizer(parameters, self.config)
        if on_step is not None:
            with self._stage(timings, "evaluate"):
                on_step(0)
        try:
            for tokens in adaptation.tokens:
                for window in rolling_windows(tokens, self.prefix_id, self.max_length):
                    with self._stage(timings, "train"):
                        self.model.train()
                        train_step(self.model, window, optimizer, parameters, self.config.grad_clip)
                    adaptation.steps += 1
                    if on_step is not None:
                        with self._stage(timings, "evaluate"):
                            on_step(adaptation.steps)
        finally:
            self.model.train(was_training)

    def _context(self, adaptation: Adaptation, room: int) -> tuple[list[int], list[int]]:
        """Context mode: the selected sequences that fit in ``room`` tokens."""
        if self.config.mode != "context" or not adaptation.tokens:
            return [], []
        return fit_context(adaptation.tokens, room, self.prefix_id)

    def _score(self, tokens: list[int], context: list[int] = ()) -> float:
        return score_tokens(self.model, tokens, self.prefix_id, self.max_length, context)[0]

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
