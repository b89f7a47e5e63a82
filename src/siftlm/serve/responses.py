"""OpenAI response bodies (completions and chat, whole or as server-sent events), with
the ``ttft`` extension: what the model was adapted on and how."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from siftlm.serve.engine import Completion
from siftlm.training import TTTConfig


class APIError(Exception):
    """An error answered with an OpenAI-style body ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers


def ttft_info(completion: Completion, config: TTTConfig) -> dict[str, Any]:
    """The extension field of a response: the configuration used, the memory sequences
    (ids, domains, cosine scores, in selection order), steps, the prompt's uncertainty
    (surrogate variance) before and after the selection, and seconds per stage."""
    result = completion.result
    return {
        "method": result.method,
        "config": {
            "method": config.method,
            "mode": config.mode,
            "n": config.n,
            "k": config.k,
            "lambda": config.lambda_,
            "alpha": config.alpha,
            "distinct": config.distinct,
            "lr": config.lr,
            "variance_gate": config.variance_gate,
            "seed": config.seed,
        },
        "steps": result.steps,
        "gated": _gated(result, config),
        "memory": [
            {"id": item.id, "domain": item.domain, "doc_id": item.doc_id, "score": item.score}
            for item in result.memory
        ],
        "prior_variance": result.prior_variance,
        "posterior_variance": result.posterior_variance,
        "timings": result.timings.to_dict(),
    }


def _gated(result, config: TTTConfig) -> bool:
    """Whether ``variance_gate`` skipped the training (``TTTConfig.training_lr``)."""
    if not config.trains:
        return False
    return config.training_lr(result.posterior_variance, result.prior_variance) is None


def usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def warnings_of(completion: Completion, max_tokens: int) -> list[str]:
    if not completion.result.truncated:
        return []
    return [
        f"the prompt was longer than the {completion.prompt_tokens} tokens that fit in the "
        f"context besides max_tokens={max_tokens}; only its end was used"
    ]


class Responder:
    """Builds the bodies of one request (``chat``: chat completion, else completion)."""

    def __init__(self, model_id: str, chat: bool) -> None:
        self.model_id = model_id
        self.chat = chat
        prefix = "chatcmpl" if chat else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model_id}

    def whole(self, completion: Completion, config: TTTConfig, max_tokens: int) -> dict:
        """The complete response to a request without ``stream``."""
        if self.chat:
            body = self._envelope("chat.completion")
            choice = {"message": {"role": "assistant", "content": completion.text}}
        else:
            body = self._envelope("text_completion")
            choice = {"text": completion.text}
        choice = {"index": 0, **choice, "finish_reason": completion.finish_reason}
        body.update(choices=[{**choice, "logprobs": None}], usage=usage(completion))
        body["ttft"] = ttft_info(completion, config)
        warnings = warnings_of(completion, max_tokens)
        if warnings:
            body["warnings"] = warnings
        return body

    def chunk(self, text: str | None, finish_reason: str | None = None, **extra) -> str:
        """One event of a stream: a piece of text (chat: a delta; None: no content)."""
        if self.chat:
            body = self._envelope("chat.completion.chunk")
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        else:
            body = self._envelope("text_completion")
            choice = {"index": 0, "text": text or "", "finish_reason": finish_reason}
        body.update(choices=[{**choice, "logprobs": None}], **extra)
        return event(body)

    def first(self) -> str | None:
        """The chat stream's opening event (the assistant's role); None for completions."""
        if not self.chat:
            return None
        body = self._envelope("chat.completion.chunk")
        delta = {"role": "assistant", "content": ""}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]
        return event(body)

    def last(self, completion: Completion, config: TTTConfig, max_tokens: int) -> str:
        extra = {"ttft": ttft_info(completion, config)}
        warnings = warnings_of(completion, max_tokens)
        if warnings:
            extra["warnings"] = warnings
        return self.chunk(None, completion.finish_reason, **extra)

    def usage_event(self, completion: Completion) -> str:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return event({**self._envelope(obj), "choices": [], "usage": usage(completion)})


def event(body: dict) -> str:
    """A server-sent event carrying ``body`` as JSON."""
    return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"
