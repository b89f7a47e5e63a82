"""Bits per byte against a hand computation, and the rolling windows."""

from __future__ import annotations

import math

import pytest
import torch

from siftlm.evaluation import (
    bits_per_byte,
    prefix_token_id,
    rolling_windows,
    score_text,
    score_tokens,
)
from siftlm.evaluation.bpb import Window, encode


def hand_nll(model, sequence: list[int], n_scored: int) -> float:
    """-sum log p(token | tokens before it) over the last n_scored tokens of sequence,
    the log-softmax written out in float64 Python arithmetic."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([sequence[:-1]])).logits[0].double().tolist()
    total = 0.0
    for position in range(len(sequence) - n_scored, len(sequence)):
        row = logits[position - 1]  # the logits after the token before `position`
        top = max(row)
        log_normaliser = top + math.log(sum(math.exp(value - top) for value in row))
        total -= row[sequence[position]] - log_normaliser
    return total


def test_rolling_windows_match_lm_evaluation_harness():
    # the gold of lm-evaluation-harness's test_get_rolling_token_windows_v1
    # (input tokens, predicted tokens), before make_disjoint_window
    gold = [
        ([-100, *range(0, 9)], list(range(0, 10))),
        (list(range(9, 19)), list(range(10, 20))),
        (list(range(19, 29)), list(range(20, 30))),
        (list(range(23, 33)), list(range(30, 34))),
    ]
    windows = rolling_windows(list(range(34)), prefix_id=-100, max_length=10)
    assert [(w.input_ids, w.continuation) for w in windows] == gold
    # disjoint: the context is what is conditioned on and not scored
    assert windows[0].context == [-100] and windows[3].context == list(range(23, 30))


@pytest.mark.parametrize("max_length", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("n_tokens", [0, 1, 2, 15, 16, 17, 50])
def test_every_token_scored_once_within_the_window(n_tokens, max_length):
    tokens = list(range(1, n_tokens + 1))
    windows = rolling_windows(tokens, prefix_id=0, max_length=max_length)
    assert [t for w in windows for t in w.continuation] == tokens
    assert all(1 <= len(w.input_ids) <= max_length for w in windows)
    assert all(w.context for w in windows)  # every token is conditioned on something
    assert len(windows) == math.ceil(n_tokens / max_length)


def test_short_text_by_hand(model, tokenizer, texts):
    text = texts[0]  # has multi-byte characters: bytes, not characters, count
    tokens = encode(tokenizer, text)
    prefix = prefix_token_id(tokenizer)
    assert len(tokens) < 64
    score = score_text(model, tokenizer, text)
    expected = hand_nll(model, [prefix, *tokens], len(tokens))
    assert score.nll_nats == pytest.approx(expected, rel=1e-5)
    assert score.n_tokens == len(tokens)
    assert score.n_bytes == len(text.encode("utf-8")) > len(text)
    assert score.bpb == pytest.approx(expected / (math.log(2) * score.n_bytes), rel=1e-5)


def test_long_text_with_rolling_windows_by_hand(model, tokenizer, texts):
    tokens = encode(tokenizer, " ".join(texts))[:19]
    assert len(tokens) == 19
    prefix = prefix_token_id(tokenizer)
    # max_length 8: tokens 0-7 after the prefix; 8-15 after token 7; 16-18 after 10-15
    expected = (
        hand_nll(model, [prefix, *tokens[0:8]], 8)
        + hand_nll(model, tokens[7:16], 8)
        + hand_nll(model, tokens[10:19], 3)
    )
    nll, n_scored = score_tokens(model, tokens, prefix, max_length=8)
    assert n_scored == 19
    assert nll == pytest.approx(expected, rel=1e-5)
    # scored in one window of 64, the same tokens get a different (fuller) context
    assert score_tokens(model, tokens, prefix, max_length=64)[0] != pytest.approx(nll, rel=1e-6)


def test_context_is_conditioned_on_not_scored(model, tokenizer, texts):
    prefix = prefix_token_id(tokenizer)
    tokens = encode(tokenizer, texts[1])[:10]
    context = encode(tokenizer, texts[2])[:6]
    nll, n_scored = score_tokens(model, tokens, prefix, max_length=20, context_ids=context)
    assert n_scored == 10
    assert nll == pytest.approx(hand_nll(model, [*context, prefix, *tokens], 10), rel=1e-5)
    # in a window of 15, the 6 context tokens precede each of the text's windows of 9
    nll, _ = score_tokens(model, tokens, prefix, max_length=15, context_ids=context)
    expected = hand_nll(model, [*context, prefix, *tokens[:9]], 9) + hand_nll(
        model, [*context, *tokens], 1
    )
    assert nll == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="leaves no room"):
        score_tokens(model, tokens, prefix, max_length=6, context_ids=context)


def test_score_leaves_the_model_mode_alone(model, tokenizer, texts):
    model.train()
    score_text(model, tokenizer, texts[1])
    assert model.training


def test_prefix_token_is_bos_else_eos():
    class Tokenizer:
        bos_token_id, eos_token_id = 1, 2

    assert prefix_token_id(Tokenizer()) == 1
    Tokenizer.bos_token_id = None
    assert prefix_token_id(Tokenizer()) == 2
    Tokenizer.eos_token_id = None
    with pytest.raises(ValueError, match="neither a BOS nor an EOS"):
        prefix_token_id(Tokenizer())


def test_bad_arguments(model, tokenizer, texts):
    with pytest.raises(ValueError, match="positive byte count"):
        bits_per_byte(1.0, 0)
    with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
        score_text(model, tokenizer, texts[0], max_length=65)
    assert rolling_windows([], 0, 8) == []
    assert Window([0], [5, 6]).input_ids == [0, 5]
