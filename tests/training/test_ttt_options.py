"""The training options against harm (warm-up, proximal term, variance gate, early stop
on the known half) and the engine's manners towards its caller (random state, weights
changed by the caller): each option restores bitwise, is deterministic, and does what it
says."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import siftlm.training.loop as loop_module
from siftlm.training import TestTimeTrainer, TTTConfig

OPTIONS = {
    "warmup": {"warmup": 3},
    "proximal": {"proximal": 0.5},
    "variance_gate": {"variance_gate": 0.99},
    "early_stop": {"early_stop": 1, "query": "first-half"},
    "gradient_reuse": {"gradient_reuse": 2},
    "variance_lr": {"variance_lr": ((0.5, 3e-2), (0.99, 3e-3))},
}


def _config(**overrides) -> TTTConfig:
    return TTTConfig(**{"n": 4, "k": 8, "lr": 1e-2, "seed": 0, "variance_gate": None, **overrides})


@pytest.mark.parametrize("finetune", ["full", "lora"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_option_restores_bitwise_and_is_deterministic(
    option, finetune, make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    config = _config(finetune=finetune, **OPTIONS[option])
    model = make_model()
    before = state_of(model)
    trainer = TestTimeTrainer(model, tokenizer, memory, config)
    first = [trainer.evaluate(p, curve=True) for p in prompts]
    assert_untouched(model, before)
    again = [
        TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(p, curve=True)
        for p in prompts
    ]
    assert [r.nll_nats for r in first] == [r.nll_nats for r in again]
    assert [r.curve for r in first] == [r.curve for r in again]


def test_warmup_raises_the_learning_rate_linearly(
    monkeypatch, make_model, tokenizer, memory, prompts
):
    rates = []
    original = loop_module.set_lr

    def recording(optimizer, lr):
        rates.append(lr)
        original(optimizer, lr)

    monkeypatch.setattr(loop_module, "set_lr", recording)
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, _config(warmup=3, lr=0.3))
    trainer.evaluate(prompts[0])
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.3])
    rates.clear()
    TestTimeTrainer(make_model(), tokenizer, memory, _config(lr=0.3)).evaluate(prompts[0])
    assert rates == pytest.approx([0.3] * 4)


def _distance(model, base_state) -> float:
    return sum(
        (p.detach() - base_state[name]).pow(2).sum().item() for name, p in model.named_parameters()
    )


def test_a_strong_proximal_term_keeps_the_weights_near_the_base(
    make_model, tokenizer, memory, prompts, state_of
):
    distances = {}
    for mu in (0.0, 1e4):
        model = make_model()
        before = state_of(model)
        config = _config(proximal=mu, optimizer="sgd", lr=1e-4, grad_clip=None)
        with TestTimeTrainer(model, tokenizer, memory, config).adapt(prompts[0]) as adaptation:
            assert adaptation.steps == 4
            distances[mu] = _distance(model, before)
    assert 0 < distances[1e4] < distances[0.0] / 2  # lr * mu = 1: each step pulls back to W_0


def test_the_variance_gate_answers_with_the_base_model(make_model, tokenizer, memory, prompts):
    base = TestTimeTrainer(make_model(), tokenizer, memory, TTTConfig(method="base"))
    closed = TestTimeTrainer(make_model(), tokenizer, memory, _config(variance_gate=1e-6))
    opened = TestTimeTrainer(make_model(), tokenizer, memory, _config(variance_gate=1.0))
    for prompt in prompts:
        gated = closed.evaluate(prompt)
        assert gated.steps == 0 and gated.n_selected == 4
        assert gated.posterior_variance > 1e-6 * gated.prior_variance
        assert gated.nll_nats == base.evaluate(prompt).nll_nats
        assert opened.evaluate(prompt).steps == 4


def test_variance_lr_trains_each_prompt_with_the_rate_of_its_band(
    make_model, tokenizer, memory, prompts
):
    ratios = []
    for prompt in prompts:
        config = _config(variance_gate=None)
        result = TestTimeTrainer(make_model(), tokenizer, memory, config).evaluate(prompt)
        ratios.append(result.posterior_variance / result.prior_variance)
    middle = sorted(ratios)[len(ratios) // 2]
    # prompts at or below the middle ratio get 5e-2, those above it the plain lr 1e-3
    banded = _config(lr=1e-3, variance_lr=((middle, 5e-2),))
    lrs = []
    for prompt, ratio in zip(prompts, ratios, strict=True):
        lr = 5e-2 if ratio <= middle else 1e-3
        lrs.append(lr)
        plain = TestTimeTrainer(make_model(), tokenizer, memory, _config(lr=lr))
        got = TestTimeTrainer(make_model(), tokenizer, memory, banded).evaluate(prompt)
        assert got.nll_nats == plain.evaluate(prompt).nll_nats
    assert set(lrs) == {5e-2, 1e-3}  # both bands were exercised


@pytest.mark.parametrize(
    "bad",
    [(), "0.2:1e-3", ((0.3, 1e-3), (0.2, 1e-4)), ((1.5, 1e-3),), ((0.2, 0.0),), ("0.2",)],
)
def test_bad_variance_lr_is_refused_with_its_reason(bad):
    with pytest.raises(ValueError, match="variance_lr"):
        TTTConfig(variance_lr=bad)


def test_variance_lr_accepts_strings_and_survives_a_round_trip():
    config = TTTConfig(variance_lr=["0.2:3e-4", "0.3:1e-4"])
    assert config.variance_lr == ((0.2, 3e-4), (0.3, 1e-4))
    assert TTTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    ungated = dataclasses.replace(config, variance_gate=None)
    assert [ungated.training_lr(r, 1.0) for r in (0.1, 0.2, 0.25, 0.5)] == [
        3e-4,
        3e-4,
        1e-4,
        config.lr,
    ]


def test_early_stop_keeps_the_weights_of_the_best_check(make_model, tokenizer, memory, prompts):
    text = prompts[1] + " " + prompts[2] + " " + prompts[0]
    # a huge learning rate: the known half's loss rises after the first steps
    stopping = _config(lr=3.0, early_stop=1, query="first-half", method="sift", n=6, k=8)
    result = TestTimeTrainer(make_model(), tokenizer, memory, stopping).evaluate(text)
    assert result.kept_steps is not None and result.kept_steps < result.steps <= 6
    # the kept weights are those after kept_steps steps: a run of that many steps without
    # the early stop ends in the same model (greedy picks: the first m of n are those of m)
    if result.kept_steps == 0:
        plain = TTTConfig(method="base", query="first-half")
    else:
        plain = _config(lr=3.0, query="first-half", method="sift", n=result.kept_steps, k=8)
    same = TestTimeTrainer(make_model(), tokenizer, memory, plain).evaluate(text)
    assert same.nll_nats == pytest.approx(result.nll_nats, rel=1e-6)


def test_the_callers_random_state_is_left_alone(make_model, tokenizer, memory, prompts):
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, _config(seed=7))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainer.evaluate(prompts[0])
    assert torch.equal(torch.rand(3), expected)


def test_weights_changed_by_the_caller_become_the_base(make_model, tokenizer, memory, prompts):
    model = make_model()
    trainer = TestTimeTrainer(model, tokenizer, memory, _config())
    trainer.evaluate(prompts[0])
    parameter = next(model.parameters())
    with torch.no_grad():
        parameter.add_(0.25)  # the caller's own change, after the trainer was made
    changed = parameter.detach().clone()
    trainer.evaluate(prompts[1])
    assert torch.equal(parameter.detach(), changed)  # restored to the caller's weights


def _count_training_passes(model) -> list[int]:
    calls = [0]

    def hook(module, args):
        if module.training and torch.is_grad_enabled():
            calls[0] += 1

    model.register_forward_pre_hook(hook)
    return calls


def test_gradient_reuse_saves_one_pass_per_repeat(make_model, tokenizer, memory, prompts):
    # nn-f trains on the nearest sequence n times: n - 1 repeats
    plain_model, reuse_model = make_model(), make_model()
    plain_calls = _count_training_passes(plain_model)
    reuse_calls = _count_training_passes(reuse_model)
    plain = TestTimeTrainer(plain_model, tokenizer, memory, _config(method="nn-f", n=6, lr=1e-3))
    reusing = TestTimeTrainer(
        reuse_model, tokenizer, memory, _config(method="nn-f", n=6, lr=1e-3, gradient_reuse=100)
    )
    a, b = plain.evaluate(prompts[0]), reusing.evaluate(prompts[0])
    assert a.steps == b.steps == 6 and a.passes == 6
    assert b.passes == 1 and plain_calls[0] == 6 and reuse_calls[0] == 1
    assert a.nll_nats != b.nll_nats  # a stale gradient is an approximation
    # every second repeat recomputed: passes on repeats 0, 2, 4
    every2 = TestTimeTrainer(
        make_model(), tokenizer, memory, _config(method="nn-f", n=6, lr=1e-3, gradient_reuse=2)
    )
    assert every2.evaluate(prompts[0]).passes == 3


def test_gradient_reuse_changes_nothing_without_repeats(make_model, tokenizer, memory, prompts):
    for prompt in prompts:  # nn: every sequence once
        plain = TestTimeTrainer(make_model(), tokenizer, memory, _config(method="nn"))
        reusing = TestTimeTrainer(
            make_model(), tokenizer, memory, _config(method="nn", gradient_reuse=2)
        )
        a, b = plain.evaluate(prompt, curve=True), reusing.evaluate(prompt, curve=True)
        assert a.curve == b.curve and a.nll_nats == b.nll_nats and a.passes == b.passes == 4
