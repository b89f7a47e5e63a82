"""Log-likelihood of continuations given a context, as the harness defines it.

Tokenisation follows lm-evaluation-harness's causal backends: trailing whitespace of
the context moves to the continuation, the pair is encoded whole and split where the
context's own tokens end, and an empty context is the prefix token (BOS, else EOS). A
sequence longer than the model's window keeps its end: the input is the last
``max_length`` tokens before the last one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from siftlm.evaluation.bpb import encode, model_device


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens); the context's trailing whitespace goes to
    the continuation, and the continuation's tokens are those of the whole text after
    the context's tokens (so that a word split across the boundary is tokenised as in
    the whole text)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context) if context else []
    return context_ids, whole[len(context_ids) :]


def score_continuations(
    model,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    max_length: int,
    batch_size: int | None = 1,
    pad_id: int = 0,
) -> list[tuple[float, bool]]:
    """(sum of log-probabilities, greedy?) of each continuation after its context.

    ``sequences``: (context ids, continuation ids) pairs, the context non-empty (the
    prefix token for an empty one); ``batch_size`` pairs go through one forward pass,
    right-padded (None: all at once). "greedy" is whether every continuation token is
    the model's argmax. The model is put in eval mode and back.
    """
    items = []
    for context, continuation in sequences:
        if not continuation:
            raise ValueError("a continuation must have at least one token")
        if len(continuation) > max_length:
            raise ValueError(
                f"a continuation of {len(continuation)} tokens does not fit in the model's "
                f"window of {max_length}"
            )
        full = [*context, *continuation][-(max_length + 1) :]
        items.append((full, len(continuation)))
    step = batch_size or max(len(items), 1)
    results: list[tuple[float, bool]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(items), step):
            results.extend(_score_batch(model, items[start : start + step], pad_id))
    finally:
        model.train(was_training)
    return results


def _score_batch(
    model, items: list[tuple[list[int], int]], pad_id: int
) -> list[tuple[float, bool]]:
    width = max(len(full) - 1 for full, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (full, _) in enumerate(items):
        ids[row, : len(full) - 1] = torch.tensor(full[:-1])
        mask[row, : len(full) - 1] = 1
    device = model_device(model)
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    out = []
    for row, (full, n_scored) in enumerate(items):
        end = len(full) - 1
        log_probs = logits[row, end - n_scored : end].float().log_softmax(dim=-1)
        target = torch.tensor(full[-n_scored:], device=log_probs.device)
        total = log_probs.gather(-1, target[:, None]).squeeze(-1).double().sum().item()
        greedy = bool((log_probs.argmax(dim=-1) == target).all())
        out.append((total, greedy))
    return out
