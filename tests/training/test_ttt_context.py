"""Context mode: selected sequences before the text, never beyond the window."""

from __future__ import annotations

import pytest

from siftlm.evaluation.bpb import encode
from siftlm.training import TestTimeTrainer, TTTConfig
from siftlm.training.context import fit_context

MAX_LENGTH = 64


@pytest.fixture()
def input_lengths():
    """Attach to a model: the length of every forward pass's input."""
    lengths = []

    def attach(model):
        def hook(module, args, kwargs):
            lengths.append(kwargs["input_ids"].shape[1])

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    attach.lengths = lengths
    return attach


def test_fit_context_takes_whole_sequences_then_cuts_the_next_first_selected_nearest():
    sequences = [[1, 2], [3], [4, 5, 6], [7]]
    context, placed = fit_context(sequences, room=7, prefix_id=0)
    # [0,1,2] (3) and [0,3] (2) fit; [0,4,5,6] (4) is cut to [0,4]; then the room is full
    assert placed == [0, 1, 2]
    assert context == [0, 4, 0, 3, 0, 1, 2]
    assert fit_context(sequences, room=6, prefix_id=0) == ([0, 3, 0, 1, 2], [0, 1])
    assert fit_context(sequences, room=1, prefix_id=0) == ([], [])
    assert fit_context(sequences, room=2, prefix_id=0) == ([0, 1], [0])
    with pytest.raises(ValueError, match="room"):
        fit_context(sequences, room=-1, prefix_id=0)


def test_context_mode_fills_the_window_without_training(
    make_model, tokenizer, memory, prompts, input_lengths, state_of, assert_untouched
):
    model = input_lengths(make_model())
    before = state_of(model)
    config = TTTConfig.from_name("context", n=6, k=10, max_length=MAX_LENGTH)
    trainer = TestTimeTrainer(model, tokenizer, memory, config)
    result = trainer.evaluate(prompts[1])
    base = TestTimeTrainer(model, tokenizer, None, TTTConfig(method="base", max_length=MAX_LENGTH))
    assert result.method == "context" and result.steps == 0
    assert 1 <= result.n_context < result.n_selected == 6  # not all fit in the window
    assert len(input_lengths.lengths) == 1  # one window: context, prefix, text
    assert len(encode(tokenizer, prompts[1])) + 1 < input_lengths.lengths[0] <= MAX_LENGTH
    assert result.nll_nats != base.evaluate(prompts[1]).nll_nats
    assert_untouched(model, before)


def test_a_long_text_keeps_context_tokens_of_every_window_for_the_context(
    make_model, tokenizer, memory, prompts, input_lengths
):
    model = input_lengths(make_model())
    long_text = " ".join(prompts * 3)
    n_tokens = len(encode(tokenizer, long_text))
    assert n_tokens > MAX_LENGTH
    config = TTTConfig.from_name("context", n=6, k=10, max_length=MAX_LENGTH, context_tokens=24)
    result = TestTimeTrainer(model, tokenizer, memory, config).evaluate(long_text)
    base = TestTimeTrainer(model, tokenizer, None, TTTConfig(method="base", max_length=MAX_LENGTH))
    assert result.n_context >= 1 and result.n_tokens == n_tokens
    assert result.nll_nats != base.evaluate(long_text).nll_nats
    lengths = input_lengths.lengths[: len(input_lengths.lengths) - 2]  # base: 2 windows
    assert max(input_lengths.lengths) <= MAX_LENGTH
    # each text window holds at most 64 - 24 = 40 tokens: at least ceil(n / 40) passes
    assert len(lengths) >= -(-n_tokens // (MAX_LENGTH - 24))
    assert all(length > 24 for length in lengths)  # the context precedes every window


def test_context_tokens_must_leave_room_for_the_text(make_model, tokenizer, memory):
    config = TTTConfig.from_name("context", n=2, k=4, max_length=MAX_LENGTH, context_tokens=64)
    with pytest.raises(ValueError, match="context_tokens=64 leaves no room"):
        TestTimeTrainer(make_model(), tokenizer, memory, config)
    with pytest.raises(ValueError, match="context_tokens must be >= 2"):
        TTTConfig.from_name("context", context_tokens=1)


def test_generation_in_context_mode_respects_the_window(
    make_model, tokenizer, memory, prompts, input_lengths
):
    model = input_lengths(make_model())
    config = TTTConfig.from_name("context", n=6, k=10, max_length=MAX_LENGTH)
    trainer = TestTimeTrainer(model, tokenizer, memory, config)
    result = trainer.generate(prompts[2], max_new_tokens=8)
    assert result.steps == 0 and len(result.memory) == 6
    # the first pass sees context + prompt; with the 7 new tokens fed back, at most 64
    assert input_lengths.lengths[0] + 7 <= MAX_LENGTH
    assert input_lengths.lengths[0] > len(encode(tokenizer, prompts[2])) + 1
