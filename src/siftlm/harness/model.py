"""The ``siftlm`` model of lm-evaluation-harness: test-time fine-tuning per request.

Every request adapts the model to its context (the selection from the datastore, the
gradient steps), is scored or answered, and the base model is restored bitwise before
the next one (``TestTimeTrainer.adapt``):

- ``loglikelihood``: requests are grouped by context; each context adapts once and all
  its continuations (a multiple-choice question's choices) are scored with that model.
  An empty context is not adapted to (nothing to select for): the base model scores it.
- ``loglikelihood_rolling``: ``TestTimeTrainer.evaluate`` on the text, exactly as
  ``siftlm bench`` evaluates a document (the query is the text itself, or its first half
  where ``TTTConfig`` asks for it; the document's ``id``/``domain`` fields identify it for
  the held-out protocols). The result is a float that also carries the bytes it scored.
- ``generate_until``: ``TestTimeTrainer.generate``, cut at the first stop string.

Importing this module registers the model with the harness (``lm_eval.api.registry``).
What each request did (method, steps, selected memory ids, uncertainty before and
after) is kept in ``SiftLM.facts``; ``siftlm eval`` adds it to the logged samples.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import lm_eval.models  # noqa: F401  (the harness's own models first: "hf", "dummy", ...)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm.auto import tqdm

from siftlm.harness.options import make_ttt_config, parse_batch_size, split_model_args
from siftlm.harness.scoring import encode_pair, score_continuations

logger = logging.getLogger(__name__)


class RollingLogLikelihood(float):
    """A rolling log-likelihood (nats, <= 0) that knows the UTF-8 bytes it scored
    (the whole text, or its second half under ``query="first-half"``)."""

    n_bytes: int

    def __new__(cls, value: float, n_bytes: int) -> RollingLogLikelihood:
        self = super().__new__(cls, value)
        self.n_bytes = int(n_bytes)
        return self

    def __reduce__(self):  # the harness's request cache pickles responses
        return (RollingLogLikelihood, (float(self), self.n_bytes))


def _facts(adaptation, request_type: str, **extra: Any) -> dict[str, Any]:
    """The per-request TTFT facts logged with the harness's samples."""
    return {
        "request_type": request_type,
        "method": adaptation.method,
        "steps": adaptation.steps,
        "selected_ids": [item.id for item in adaptation.memory],
        "prior_variance": adaptation.prior_variance,
        "posterior_variance": adaptation.posterior_variance,
        "gated": getattr(adaptation, "gated", False),  # variance_gate: selected, not trained
        "seconds": round(adaptation.timings.total, 4),
        **extra,
    }


def _resolve_device(device: str | None):
    """The torch device of ``device`` as the harness's HF backend reads it: the
    default (None) or a CUDA device on a machine without CUDA is the CPU, with a note."""
    import torch

    cuda = torch.cuda.is_available()
    if device is None or (str(device).startswith("cuda") and not cuda):
        if device is not None:
            logger.warning("device %r is not available here; using the CPU", device)
        return torch.device("cuda" if cuda else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"model_args: invalid device {device!r}: {error}") from None


@register_model("siftlm")
class SiftLM(LM):
    """lm-evaluation-harness model: a causal LM adapted to every request.

    Args (``--model_args``): ``pretrained`` a house name, folder or hub name (or a
    model object); ``tokenizer`` (default: the model's); ``store`` the datastore folder
    (default: the embedded memory store; not needed for ``method=base``; or a
    ``MemoryLike`` object); every ``TTTConfig`` field by name (``method``, ``n``, ``k``,
    ``lambda_``, ``lr``, ...). ``batch_size`` (int, or "auto": all continuations of a
    context at once, at most ``max_batch_size``) is the number of continuations scored
    per forward pass; test-time training itself is one prompt at a time. ``device``:
    "cpu", "cuda", "cuda:1", ... (default: cuda if available).
    """

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        backend, ttt = split_model_args(model_args)
        self.config = make_ttt_config(ttt)
        self.batch_size_per_call = parse_batch_size(
            backend.get("batch_size", 1), backend.get("max_batch_size", 64)
        )
        self.progress = bool(backend.get("progress", True))
        model, tokenizer = self._load(backend)
        store = backend.get("store")
        if self.config.method != "base" and (store is None or isinstance(store, str)):
            from siftlm.bench.runner import open_store

            store = open_store(store)
        from siftlm.training import TestTimeTrainer

        self.trainer = TestTimeTrainer(model, tokenizer, store, self.config)
        self.model, self.tokenizer = model, tokenizer
        self.facts: dict[tuple[str | None, int | None, int], dict[str, Any]] = {}

    def _load(self, backend: dict[str, Any]):
        from siftlm.models.loading import load_tokenizer

        pretrained = backend.get("pretrained", "house-small")
        tokenizer = backend.get("tokenizer")
        if isinstance(pretrained, str):
            from siftlm.models import load_model

            model, own_tokenizer = load_model(pretrained)
            if tokenizer is None:
                tokenizer = own_tokenizer
        else:
            model = pretrained
            if tokenizer is None:
                raise ValueError("model_args: a model object needs its tokenizer (tokenizer=...)")
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        self._device = _resolve_device(backend.get("device"))
        model.to(self._device)
        model.eval()
        return model, tokenizer

    @property
    def max_length(self) -> int:
        return self.trainer.max_length

    def _bar(self, total: int, what: str):
        return tqdm(
            total=total,
            desc=f"Running {what} requests (siftlm {self.config.name})",
            disable=not self.progress or self.rank != 0,
        )

    def _record(self, request, facts: dict[str, Any]) -> None:
        self.facts[(request.task_name, request.doc_id, request.idx)] = facts

    # -- the three request types -----------------------------------------------------

    def _documents_only(self, what: str) -> None:
        """The held-out protocols name a document (its id and domain): they apply to
        rolling requests, where the harness's document is the text scored."""
        exclude = getattr(self.config, "exclude", None)
        if exclude is not None:
            raise ValueError(
                f"exclude={exclude!r} applies to loglikelihood_rolling requests (documents "
                f"with an id and a domain), not to {what} requests"
            )

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log-probability, greedy?) per (context, continuation); one adaptation per
        distinct context, in order of first appearance."""
        self._documents_only("loglikelihood")
        by_context: dict[str, list[int]] = defaultdict(list)
        for position, request in enumerate(requests):
            by_context[request.args[0]].append(position)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = self._bar(len(requests), "loglikelihood")
        bar.disable = bar.disable or disable_tqdm
        for context, positions in by_context.items():
            pairs = [encode_pair(self.tokenizer, context, requests[p].args[1]) for p in positions]
            scores, facts = self._score_context(context, pairs)
            for position, score in zip(positions, scores, strict=True):
                results[position] = score
                self._record(requests[position], {**facts, "continuations": len(positions)})
            bar.update(len(positions))
        bar.close()
        return results  # type: ignore[return-value]

    def _score_context(self, context: str, pairs: list[tuple[list[int], list[int]]]):
        prefix = [self.trainer.prefix_id]
        if not context.strip():  # nothing to adapt to: the base model
            sequences = [(ids or prefix, cont) for ids, cont in pairs]
            scores = score_continuations(
                self.model, sequences, self.max_length, self.batch_size_per_call
            )
            return scores, {
                "request_type": "loglikelihood",
                "method": "base",
                "steps": 0,
                "selected_ids": [],
                "note": "empty context: not adapted",
            }
        with self.trainer.adapt(context) as adaptation:
            longest = max(len(ids) + len(cont) for ids, cont in pairs)
            window = self._context_tokens(adaptation, longest)
            sequences = [([*window, *(ids or prefix)], cont) for ids, cont in pairs]
            scores = score_continuations(
                self.model, sequences, self.max_length, self.batch_size_per_call
            )
        return scores, _facts(adaptation, "loglikelihood", in_context=bool(window))

    def _context_tokens(self, adaptation, n_text: int) -> list[int]:
        """Context mode: the selected sequences before the text (as ``evaluate`` does:
        at least ``context_tokens``, or all the room that a short text leaves)."""
        if self.config.mode != "context" or not adaptation.tokens:
            return []
        from siftlm.training.context import fit_context

        room = max(self.trainer.context_tokens, self.max_length - 1 - n_text)
        return fit_context(adaptation.tokens, room, self.trainer.prefix_id)[0]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each text (rolling windows), after adapting to it: one call
        of ``TestTimeTrainer.evaluate``, the same as ``siftlm bench``."""
        results = []
        bar = self._bar(len(requests), "loglikelihood_rolling")
        bar.disable = bar.disable or disable_tqdm
        for request in requests:
            doc = request.doc if isinstance(request.doc, dict) else {}
            result = self.trainer.evaluate(
                request.args[0], doc_id=doc.get("id"), domain=doc.get("domain")
            )
            results.append(RollingLogLikelihood(-result.nll_nats, result.n_bytes))
            self._record(
                request,
                {
                    "request_type": "loglikelihood_rolling",
                    "method": result.method,
                    "steps": result.steps,
                    "selected_ids": list(result.selected_ids),
                    "prior_variance": result.prior_variance,
                    "posterior_variance": result.posterior_variance,
                    "nll_nats": result.nll_nats,
                    "n_bytes": result.n_bytes,
                    "n_tokens": result.n_tokens,
                    "seconds": round(result.timings.total, 4),
                },
            )
            bar.update(1)
        bar.close()
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy (unless ``do_sample``) continuation of each context after adapting to
        it, cut at the first of ``until`` (default: the EOS text)."""
        self._documents_only("generate_until")
        results = []
        bar = self._bar(len(requests), "generate_until")
        bar.disable = bar.disable or disable_tqdm
        for request in requests:
            context, gen_kwargs = request.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.pop("until", None) or [self.tokenizer.decode([self.trainer.prefix_id])]
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", 256))
            if kwargs.get("temperature") == 0:
                kwargs.pop("temperature")
                kwargs["do_sample"] = False
            if max_new > self.max_length // 2:
                logger.warning(
                    "max_gen_toks=%d leaves too little of the %d-token window for the "
                    "context; generating %d tokens",
                    max_new,
                    self.max_length,
                    self.max_length // 2,
                )
                max_new = self.max_length // 2
            result = self.trainer.generate(context, max_new_tokens=max_new, **kwargs)
            text = result.text
            for stop in until:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            results.append(text)
            self._record(
                request,
                {
                    "request_type": "generate_until",
                    "method": result.method,
                    "steps": result.steps,
                    "selected_ids": [item.id for item in result.memory],
                    "prior_variance": result.prior_variance,
                    "posterior_variance": result.posterior_variance,
                    "truncated_prompt": result.truncated,
                    "seconds": round(result.timings.total, 4),
                },
            )
            bar.update(1)
        bar.close()
        return results
