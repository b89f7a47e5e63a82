"""Per-prompt isolation: bitwise restore, a fresh optimizer per prompt, no leakage."""

from __future__ import annotations

import pytest
import torch

import siftlm.training.loop as trainer_module
from siftlm.training import TestTimeTrainer, TTTConfig

FINETUNE = ["full", "lora"]


def _config(finetune: str, **overrides) -> TTTConfig:
    # a large learning rate, so that a missed restore could not go unnoticed
    values = {"n": 3, "k": 6, "lr": 1e-2, "finetune": finetune, "seed": 0, "variance_gate": None}
    return TTTConfig(**{**values, **overrides})


@pytest.mark.parametrize("finetune", FINETUNE)
def test_restore_is_bitwise_after_many_prompts(
    finetune, make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    model = make_model()
    before = state_of(model)
    trainer = TestTimeTrainer(model, tokenizer, memory, _config(finetune))
    results = [trainer.evaluate(prompt) for prompt in prompts * 3]
    assert all(r.steps == 3 for r in results)
    assert_untouched(model, before)
    # training did change the model while it was adapted
    with trainer.adapt(prompts[0]) as adaptation:
        assert adaptation.steps == 3
        changed = state_of(model)
        assert changed.keys() != before.keys() or any(
            not torch.equal(changed[name], before[name]) for name in before
        )
    assert_untouched(model, before)


@pytest.mark.parametrize("finetune", FINETUNE)
def test_nothing_learned_for_one_prompt_reaches_the_next(
    finetune, make_model, tokenizer, memory, prompts
):
    alone = TestTimeTrainer(make_model(), tokenizer, memory, _config(finetune))
    after_others = TestTimeTrainer(make_model(), tokenizer, memory, _config(finetune))
    for prompt in prompts[1:]:
        after_others.evaluate(prompt)
    # bitwise equal: same seed at the start of each prompt, fresh optimizer, exact restore
    assert after_others.evaluate(prompts[0]).nll_nats == alone.evaluate(prompts[0]).nll_nats
    # and the adapted model really is better than the base on this prompt
    base = TestTimeTrainer(make_model(), tokenizer, memory, TTTConfig(method="base"))
    assert alone.evaluate(prompts[0]).nll_nats < base.evaluate(prompts[0]).nll_nats


@pytest.mark.parametrize("finetune", FINETUNE)
def test_a_fresh_optimizer_per_prompt(
    finetune, monkeypatch, make_model, tokenizer, memory, prompts
):
    made = []
    original = trainer_module.make_optimizer

    def recording(parameters, config):
        optimizer = original(parameters, config)
        assert not optimizer.state  # no moments carried over from an earlier prompt
        made.append(optimizer)
        return optimizer

    monkeypatch.setattr(trainer_module, "make_optimizer", recording)
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, _config(finetune))
    for prompt in prompts:
        trainer.evaluate(prompt)
    assert len(made) == len(prompts)
    assert len({id(optimizer) for optimizer in made}) == len(prompts)
    assert all(optimizer.state for optimizer in made)  # each was used


@pytest.mark.parametrize("finetune", FINETUNE)
def test_restored_after_an_error_during_training(
    finetune, monkeypatch, make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    model = make_model()
    before = state_of(model)
    trainer = TestTimeTrainer(model, tokenizer, memory, _config(finetune))
    original, calls = trainer_module.train_step, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_step", failing)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.evaluate(prompts[0])
    assert_untouched(model, before)
    # and an error in the caller's code while adapted
    monkeypatch.setattr(trainer_module, "train_step", original)
    with pytest.raises(KeyError), trainer.adapt(prompts[1]):
        raise KeyError("caller")
    assert_untouched(model, before)


def test_a_peft_lora_config_trains_its_adapter_and_restores(
    make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    from peft import LoraConfig

    model = make_model()
    before = state_of(model)
    targets = ["c_attn"] if "gpt2" in type(model).__name__.lower() else ["q_proj", "v_proj"]
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=targets, init_lora_weights=False)
    config = _config("lora", lora=lora)
    trainer = TestTimeTrainer(model, tokenizer, memory, config)
    base = TestTimeTrainer(model, tokenizer, memory, TTTConfig(method="base"))
    with trainer.adapt(prompts[0]) as adaptation:
        adapters = [n for n, _ in model.named_parameters() if "lora_" in n]
        assert adapters and all(".lora_A." in n or ".lora_B." in n for n in adapters)
        assert {n.split(".")[-3] for n in adapters} <= set(targets) | {"lora_A", "lora_B"}
        assert adaptation.steps == 3
    assert_untouched(model, before)
    assert trainer.evaluate(prompts[0]).nll_nats != base.evaluate(prompts[0]).nll_nats
    assert lora.fan_in_fan_out is False  # the caller's object is not changed
