"""The engine: what is trained on, in which order, adaptive stops, curves, timings."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import siftlm
import siftlm.selection
import siftlm.training.loop as trainer_module
from siftlm.evaluation.bpb import encode
from siftlm.training import ListMemory, TestTimeTrainer, TTTConfig
from siftlm.training.tiny import ngram_embedder


@pytest.fixture()
def trained_windows(monkeypatch):
    """The windows of every gradient step, in order."""
    windows = []
    original = trainer_module.train_step

    def recording(model, window, *args, **kwargs):
        windows.append(window)
        return original(model, window, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_step", recording)
    return windows


def _selection_for(memory, prompt: str, config: TTTConfig):
    query = memory.embed([prompt])
    hits = memory.search(query, config.k)
    selection = siftlm.select(
        query[0],
        hits.embeddings[0],
        config.n,
        method=config.method,
        lambda_=config.lambda_,
        alpha=config.alpha,
        distinct=config.distinct,
        seed=config.seed,
    )
    steps = int(selection.steps)
    ids = [int(hits.ids[0][i]) for i in np.asarray(selection.indices)[:steps]]
    return selection, ids


@pytest.mark.parametrize("method", ["sift", "nn", "nn-f"])
def test_one_step_per_selected_sequence_in_selection_order(
    method, make_model, tokenizer, memory, prompts, trained_windows
):
    config = TTTConfig(variance_gate=None, method=method, n=4, k=10)
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, config)
    result = trainer.evaluate(prompts[1])
    _, expected_ids = _selection_for(memory, prompts[1], config)
    assert list(result.selected_ids) == expected_ids
    assert result.steps == result.n_selected == len(trained_windows) == 4
    # each step trains on the whole sequence (they fit the context), prefix token first
    for window, memory_id in zip(trained_windows, expected_ids, strict=True):
        assert window.context == [tokenizer.eos_token_id]
        assert window.continuation == encode(tokenizer, memory.texts[memory_id])
    if method == "nn-f":  # the top neighbour, trained on again and again
        assert len(set(result.selected_ids)) == 1


def test_a_long_sequence_is_trained_on_in_chunks(make_model, tokenizer, trained_windows):
    long_text = " ".join(f"word{i} of the long sequence" for i in range(20))
    memory = ListMemory([long_text, "short text"], ngram_embedder())
    config = TTTConfig(variance_gate=None, method="nn", n=1, k=2, max_length=16)
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, config)
    result = trainer.evaluate("word3 of the long sequence")
    tokens = encode(tokenizer, long_text)
    assert result.n_selected == 1
    assert result.steps == len(trained_windows) == math.ceil(len(tokens) / 16) > 1
    assert [t for w in trained_windows for t in w.continuation] == tokens  # each once
    assert all(len(w.input_ids) <= 16 for w in trained_windows)


def test_adaptive_sift_trains_only_where_the_selection_stopped(
    monkeypatch, make_model, tokenizer, memory, prompts, trained_windows
):
    real_select = siftlm.selection.select

    def stops_after_two(*args, **kwargs):
        selection = real_select(*args, **kwargs)
        return SimpleNamespace(
            indices=selection.indices,
            variances=selection.variances,
            prior_variances=selection.prior_variances,
            steps=2,
        )

    monkeypatch.setattr(siftlm.selection, "select", stops_after_two)
    config = TTTConfig(variance_gate=None, method="sift", n=5, k=10, alpha=0.55)
    result = TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(prompts[0])
    monkeypatch.setattr(siftlm.selection, "select", real_select)
    selection, _ = _selection_for(memory, prompts[0], config)
    assert result.method == "sift-adaptive"
    assert result.n_selected == result.steps == len(trained_windows) == 2
    assert result.posterior_variance == pytest.approx(float(np.asarray(selection.variances)[1]))


def test_adaptive_sift_follows_the_real_selection(make_model, tokenizer, memory, prompts):
    steps = []
    for alpha in (0.15, 0.55, 2.0, 20.0):
        config = TTTConfig(variance_gate=None, method="sift", n=8, k=20, alpha=alpha)
        result = TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(prompts[2])
        selection, ids = _selection_for(memory, prompts[2], config)
        assert result.n_selected == result.steps == int(selection.steps)
        assert list(result.selected_ids) == ids
        steps.append(result.steps)
    # a larger alpha stops earlier; some stop before n
    assert steps == sorted(steps, reverse=True) and any(0 < s < 8 for s in steps)


def test_deterministic_with_a_seed(make_model, tokenizer, memory, prompts):
    def run(seed: int) -> float:
        config = TTTConfig(variance_gate=None, n=3, k=8, lr=1e-2, seed=seed)
        return (
            TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(prompts[0]).nll_nats
        )

    assert run(0) == run(0)
    if make_model().config.model_type == "gpt2":  # dropout: the seed matters
        assert run(0) != run(1)


def test_learning_curve_and_timings(make_model, tokenizer, memory, prompts):
    model = make_model()
    config = TTTConfig(variance_gate=None, method="sift", n=3, k=8, lr=1e-2)
    result = TestTimeTrainer(model, tokenizer, memory, config).evaluate(
        prompts[0], doc_id="d0", domain="code", curve=True
    )
    base = TestTimeTrainer(
        model, tokenizer, None, TTTConfig(variance_gate=None, method="base")
    ).evaluate(prompts[0], curve=True)
    assert len(result.curve) == result.steps + 1 == 4
    assert result.curve[0] == base.nll_nats  # before the first step: the base model
    assert result.curve[-1] == result.nll_nats
    assert result.curve_bpb[-1] == result.bpb < base.bpb
    assert base.curve == (base.nll_nats,) and base.curve_steps == (0,)
    assert result.curve_steps == (0, 1, 2, 3) and len(result.variances) == 3
    assert result.variances[-1] == result.posterior_variance
    sparse = TestTimeTrainer(model, tokenizer, memory, config).evaluate(prompts[0], curve=[0, 2])
    assert sparse.curve_steps == (0, 2, 3)  # the last step always
    assert sparse.curve == pytest.approx([result.curve[0], result.curve[2], result.curve[3]])
    assert result.prior_variance >= result.posterior_variance > 0
    assert (result.doc_id, result.domain, result.n_bytes) == ("d0", "code", len(prompts[0]))
    timings = result.timings
    assert min(timings.embed, timings.search, timings.select, timings.train) > 0
    assert min(timings.evaluate, timings.restore) > 0
    assert timings.total == pytest.approx(sum(timings.to_dict().values()))
    assert base.timings.train == base.timings.restore == base.timings.select == 0


def test_base_method_needs_no_memory_and_does_nothing(
    make_model, tokenizer, prompts, state_of, assert_untouched
):
    model = make_model()
    before = state_of(model)
    result = TestTimeTrainer(
        model, tokenizer, None, TTTConfig(variance_gate=None, method="base")
    ).evaluate(prompts[0])
    assert (result.steps, result.n_selected, result.selected_ids) == (0, 0, ())
    assert result.prior_variance is None and result.posterior_variance is None
    assert result.method == "base"
    assert_untouched(model, before)


def test_result_round_trips_through_json(make_model, tokenizer, memory, prompts):
    import json

    config = TTTConfig(variance_gate=None, n=2, k=5)
    result = TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(
        prompts[0], doc_id="a", domain="code", curve=True
    )
    again = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


def test_query_can_differ_from_the_evaluated_text(make_model, tokenizer, memory, prompts):
    config = TTTConfig(variance_gate=None, method="nn", n=2, k=5)
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, config)
    result = trainer.evaluate(prompts[0], query=prompts[1])
    _, expected_ids = _selection_for(memory, prompts[1], config)
    assert list(result.selected_ids) == expected_ids
    assert result.n_bytes == len(prompts[0].encode())


def test_generate_adapts_reports_the_memory_and_restores(
    make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    model = make_model()
    before = state_of(model)
    trainer = TestTimeTrainer(
        model, tokenizer, memory, TTTConfig(variance_gate=None, n=3, k=8, lr=1e-2)
    )
    result = trainer.generate(prompts[1], max_new_tokens=6)
    assert isinstance(result.text, str) and not result.truncated
    assert result.prompt == prompts[1] and result.steps == 3
    _, expected_ids = _selection_for(memory, prompts[1], trainer.config)
    assert [item.id for item in result.memory] == expected_ids
    for item in result.memory:
        assert item.domain == memory.domains[item.id] and item.text == memory.texts[item.id]
        assert -1.0 <= item.score <= 1.0
    assert result.prior_variance > result.posterior_variance
    again = trainer.generate(prompts[1], max_new_tokens=6)
    assert (again.text, again.memory) == (result.text, result.memory)  # deterministic
    assert_untouched(model, before)
