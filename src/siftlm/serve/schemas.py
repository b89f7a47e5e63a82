"""Request bodies of the OpenAI-compatible endpoints, validated by pydantic.

Unknown fields are refused (a misspelt option is an error, not silently ignored). The
extension field ``ttft`` sets per-request test-time fine-tuning options; every other
field has its OpenAI meaning. Supported subset: one choice (``n=1``), no log-probabilities,
no tools; ``temperature`` absent or 0 is greedy decoding.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from siftlm.training import TTTConfig


class TTFTOptions(BaseModel):
    """``"ttft": {...}``: how to adapt the model to this request (absent fields: the
    server's configuration). ``method`` "base" turns test-time fine-tuning off."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: str = Field(None, description="selection method, or 'base'")
    mode: Literal["finetune", "context"] = Field(None, description="train, or use as context")
    n: int = Field(None, ge=1, description="sequences to select")
    k: int = Field(None, ge=1, description="candidates to retrieve")
    lambda_: float = Field(None, gt=0, alias="lambda", description="SIFT's regularisation")
    alpha: float | None = Field(None, gt=0, description="adaptive SIFT's stop; null: off")
    distinct: bool = Field(None, description="select distinct sequences only")
    lr: float = Field(None, gt=0, le=1, description="learning rate")
    variance_gate: float | None = Field(
        None, gt=0, le=1, description="train only if posterior <= gate x prior; null: always"
    )

    def apply(self, default: TTTConfig, *, max_n: int, store_size: int) -> TTTConfig:
        """``default`` with the fields given here; ValueError names the first bad one."""
        fields = self.model_dump(exclude_unset=True)
        if fields.get("n", 0) > max_n:
            raise FieldError("ttft.n", f"n={fields['n']} exceeds this server's limit of {max_n}")
        if fields.get("k", 0) > store_size:
            raise FieldError(
                "ttft.k", f"k={fields['k']} exceeds the datastore's {store_size} sequences"
            )
        for name, value in fields.items():
            try:
                dataclasses.replace(default, **{name: value})
            except (ValueError, TypeError) as error:
                raise FieldError(f"ttft.{name.rstrip('_')}", str(error)) from None
        try:
            return dataclasses.replace(default, **fields)
        except (ValueError, TypeError) as error:
            raise FieldError("ttft", str(error)) from None


class FieldError(ValueError):
    """A request value that is out of range; ``param`` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    user: str | None = None
    ttft: TTFTOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or not all(stops)):
            raise ValueError("stop must be at most 4 non-empty strings")
        return stops

    def stops(self) -> tuple[str, ...]:
        return tuple(self.stop or ())


class CompletionRequest(_Request):
    """``POST /v1/completions``: ``prompt`` is one string (or a list of one)."""

    prompt: str | list[str]
    echo: Literal[False] = False
    logprobs: None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value):
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("this server takes one prompt per request")
            value = value[0]
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(_Request):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: Literal[False] | None = None
