"""Bits per byte of a text under a causal language model.

    bpb = (sum of NLL in nats over the documents) / (ln 2 x sum of UTF-8 bytes)

a ratio of sums over documents, not a mean of per-document values. Texts longer than
the context are scored with rolling windows, each token exactly once, with the
semantics of lm-evaluation-harness ``loglikelihood_rolling``: the first token is
conditioned on a prefix token (BOS, else EOS), the windows do not overlap in what they
score, and each window after the first is conditioned on the one token before it (the
last window also on the tokens before it that fill the context).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

LN2 = math.log(2.0)


class Window(NamedTuple):
    """One forward pass of a rolling evaluation.

    ``context``: tokens that are conditioned on but not scored; ``continuation``: the
    tokens scored. The model input is ``context + continuation[:-1]`` (at most
    ``max_length`` tokens) and its last ``len(continuation)`` positions predict
    ``continuation``.
    """

    context: list[int]
    continuation: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.context + self.continuation[:-1]


class TextScore(NamedTuple):
    """Negative log-likelihood of one text: summed nats, tokens scored, UTF-8 bytes."""

    nll_nats: float
    n_tokens: int
    n_bytes: int

    @property
    def bpb(self) -> float:
        return bits_per_byte(self.nll_nats, self.n_bytes)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Bits per byte from a (summed) NLL in nats and a (summed) byte count."""
    if n_bytes <= 0:
        raise ValueError(f"bits per byte needs a positive byte count, got {n_bytes}")
    return nll_nats / (LN2 * n_bytes)


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def rolling_windows(tokens: Sequence[int], prefix_id: int, max_length: int) -> list[Window]:
    """The disjoint rolling windows of ``tokens`` (lm-evaluation-harness semantics).

    Port of ``get_rolling_token_windows(tokens, prefix_id, max_length, context_len=1)``
    followed by ``make_disjoint_window``. Every token appears in exactly one
    ``continuation``, in order; every window's model input has at most ``max_length``
    tokens. Empty ``tokens`` give no windows.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    tokens = list(tokens)
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows = [Window([prefix_id], tokens[:first])]
    scored = first
    while scored < len(tokens):
        n_scored = min(len(tokens) - scored, max_length)
        end = scored + n_scored
        # The input is the max_length tokens that end just before the last one scored;
        # of those, the ones before the scored span are context.
        start = end - max_length - 1  # >= 0: a second window means len(tokens) > max_length
        windows.append(Window(tokens[start : end - n_scored], tokens[end - n_scored : end]))
        scored = end
    return windows


def prefix_token_id(tokenizer) -> int:
    """The token the first token of a text is conditioned on: BOS, else EOS."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError(
        "the tokenizer has neither a BOS nor an EOS token; bits per byte conditions the "
        "first token of a text on one of them"
    )


def model_context_length(model) -> int:
    """The number of positions the model can attend to (GPT-2 ``n_positions``, Llama
    ``max_position_embeddings``)."""
    config = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"cannot tell the context length of {type(model).__name__}")


def resolve_max_length(model, max_length: int | None) -> int:
    """``max_length`` checked against the model (None: the model's context length)."""
    limit = model_context_length(model)
    if max_length is None:
        return limit
    if max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's {limit} positions")
    return max_length


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (the prefix token is added here)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def continuation_logprobs(model, sequence: Sequence[int], n_scored: int) -> torch.Tensor:
    """Log-probabilities (float32, shape (n_scored,)) of the last ``n_scored >= 1``
    tokens of ``sequence`` given the tokens before them: one forward pass over
    ``sequence[:-1]``, no gradient."""
    ids = torch.tensor([list(sequence)], dtype=torch.long, device=model_device(model))
    with torch.no_grad():
        logits = model(input_ids=ids[:, :-1]).logits
    log_probs = logits[0, -n_scored:].float().log_softmax(dim=-1)
    return log_probs.gather(-1, ids[0, -n_scored:, None]).squeeze(-1)


def score_tokens(
    model,
    tokens: Sequence[int],
    prefix_id: int,
    max_length: int,
    context_ids: Sequence[int] = (),
    start: int = 0,
) -> tuple[float, int]:
    """Summed NLL in nats of ``tokens[start:]`` and the number scored, with rolling windows.

    ``context_ids`` (context mode) are put before every window, and the text's windows
    are then ``max_length - len(context_ids)`` tokens long, so that every forward pass
    stays within ``max_length``. Without context this is plain rolling evaluation.
    ``start`` (the first-half protocol): the windows are those of the whole text, and
    only the tokens from position ``start`` on are summed, so each keeps the NLL it has
    in the full evaluation. The model is put in eval mode for the passes and back in its
    mode afterwards.
    """
    context_ids = list(context_ids)
    if len(context_ids) >= max_length:
        raise ValueError(
            f"context of {len(context_ids)} tokens leaves no room for the text in "
            f"max_length={max_length}"
        )
    if not 0 <= start <= len(tokens):
        raise ValueError(f"start={start} is outside the text's {len(tokens)} tokens")
    windows = rolling_windows(tokens, prefix_id, max_length - len(context_ids))
    was_training = model.training
    model.eval()
    total = 0.0
    position = 0  # index in ``tokens`` of the window's first scored token
    try:
        for window in windows:
            n_scored = len(window.continuation)
            skip = max(0, start - position)  # tokens of this window before ``start``
            position += n_scored
            if skip >= n_scored:
                continue
            sequence = context_ids + window.context + window.continuation
            log_probs = continuation_logprobs(model, sequence, n_scored)
            total -= log_probs[skip:].double().sum().item()
    finally:
        model.train(was_training)
    return total, len(tokens) - start


def score_text(
    model,
    tokenizer,
    text: str,
    max_length: int | None = None,
    context_ids: Sequence[int] = (),
) -> TextScore:
    """NLL of ``text`` in nats, tokens and UTF-8 bytes (``TextScore.bpb`` for one text).

    ``max_length`` defaults to the model's context length.
    """
    tokens = encode(tokenizer, text)
    nll, n_tokens = score_tokens(
        model,
        tokens,
        prefix_token_id(tokenizer),
        resolve_max_length(model, max_length),
        context_ids,
    )
    return TextScore(nll, n_tokens, utf8_bytes(text))
