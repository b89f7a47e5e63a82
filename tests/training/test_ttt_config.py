"""TTTConfig: validation, benchmark names, round trip."""

from __future__ import annotations

import json

import pytest

from siftlm.training import LoRASettings, TTTConfig


def test_one_set_of_defaults_for_engine_benchmark_and_cli():
    """TTTConfig's defaults are the benchmark's and the command line's (chosen on the
    validation split); nothing repeats them."""
    import argparse

    from siftlm.bench import BenchConfig
    from siftlm.bench.config import add_arguments

    config, bench = TTTConfig(), BenchConfig(methods=("sift",))
    assert bench.ttt_config("sift") == TTTConfig(max_length=None, seed=0)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.n, args.k, args.lambda_, args.lr) == (
        config.n,
        config.k,
        config.lambda_,
        config.lr,
    )
    assert config.method == "sift" and config.finetune == "full" and config.trains


def test_a_default_trainer_does_what_its_defaults_say(monkeypatch, tokenizer):
    """Behaviour, not a snapshot: with ``TTTConfig()`` the trainer retrieves k
    candidates, selects n of them with SIFT (λ, repeats allowed), and, the selection
    passing the variance gate, takes one Adam step (lr, gradients clipped at
    ``grad_clip``) per selected sequence."""
    import torch

    import siftlm.selection
    import siftlm.training.loop as trainer_module
    from siftlm.testing import ngram_embedder, tiny_gpt2
    from siftlm.training import ListMemory, TestTimeTrainer

    defaults = TTTConfig()
    texts = [f"note {i}: the court held that x + {i} = {2 * i}" for i in range(defaults.k)]
    memory = ListMemory(texts, ngram_embedder())
    seen: dict = {}
    search, select = memory.search, siftlm.selection.select
    monkeypatch.setattr(memory, "search", lambda q, k: seen.setdefault("k", k) and search(q, k))
    monkeypatch.setattr(
        siftlm.selection,
        "select",
        lambda *a, **kw: seen.update(n=a[2], **kw) or select(*a, **kw),
    )
    clips = []
    original_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, c: clips.append(c) or original_clip(p, c)
    )
    optimizers = []
    make = trainer_module.make_optimizer
    monkeypatch.setattr(
        trainer_module,
        "make_optimizer",
        lambda p, c: optimizers.append(make(p, c)) or optimizers[-1],
    )
    model = tiny_gpt2(tokenizer, n_positions=64)
    trainer = TestTimeTrainer(model, tokenizer, memory)
    result = trainer.evaluate("the court held that x + 3 = 6")
    assert (seen["k"], seen["n"]) == (defaults.k, defaults.n)
    assert seen["method"] == "sift" and seen["lambda_"] == defaults.lambda_
    assert not seen["distinct"]
    assert result.n_selected == defaults.n
    # the memory is close to the prompt, so the default variance gate lets it train
    assert result.posterior_variance <= defaults.variance_gate * result.prior_variance
    assert result.steps >= defaults.n
    (optimizer,) = optimizers
    assert type(optimizer) is torch.optim.Adam and defaults.optimizer == "adam"
    variances = (result.posterior_variance, result.prior_variance)
    assert optimizer.param_groups[0]["lr"] == defaults.training_lr(*variances)  # its band
    assert clips == [defaults.grad_clip] * result.steps


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"method": "sfit"}, "did you mean 'sift'"),
        ({"optimizer": "adamx"}, "unknown optimizer"),
        ({"finetune": "qlora"}, "unknown finetune"),
        ({"mode": "prompt"}, "unknown mode"),
        ({"lambda_": 0.0}, "lambda_"),
        ({"alpha": -1.0}, "alpha"),
        ({"lr": 0.0}, "lr"),
        ({"eps": 0.0}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"max_length": 1}, "max_length"),
    ],
)
def test_invalid_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TTTConfig(**values)


def test_invalid_lora_settings_are_refused():
    with pytest.raises(ValueError, match="rank"):
        LoRASettings(r=0)
    with pytest.raises(ValueError, match="dropout"):
        LoRASettings(dropout=1.0)


@pytest.mark.parametrize(
    "name", ["base", "context", "context-sift", "nn", "nn-f", "us", "random", "sift", "mmr"]
)
def test_benchmark_names_round_trip(name):
    assert TTTConfig.from_name(name, n=5, k=10).name == name


def test_adaptive_sift_needs_alpha():
    with pytest.raises(ValueError, match="alpha"):
        TTTConfig.from_name("sift-adaptive")
    config = TTTConfig.from_name("sift-adaptive", alpha=0.55)
    assert (config.method, config.alpha, config.name) == ("sift", 0.55, "sift-adaptive")
    with pytest.raises(ValueError, match="unknown method 'sift-adaptiv'"):
        TTTConfig.from_name("sift-adaptiv")


def test_only_finetune_mode_with_a_selection_trains():
    assert not TTTConfig(method="base").trains
    assert not TTTConfig.from_name("context").trains


def test_to_dict_round_trips_through_json():
    config = TTTConfig(
        method="nn", n=7, finetune="lora", lora=LoRASettings(r=4, target_modules=("c_attn",))
    )
    again = TTTConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_exported_at_the_top_level():
    import siftlm
    from siftlm.training import TestTimeTrainer

    assert siftlm.TestTimeTrainer is TestTimeTrainer


def test_a_peft_lora_config_is_accepted_and_round_trips():
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], lora_dropout=0.0)
    config = TTTConfig(finetune="lora", lora=lora)
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["lora"]["peft"] == "LoraConfig" and saved["lora"]["r"] == 4
    again = TTTConfig.from_dict(saved)
    assert isinstance(again.lora, LoraConfig)
    assert (again.lora.r, again.lora.lora_alpha, set(again.lora.target_modules)) == (
        4,
        8,
        {"c_attn"},
    )
    with pytest.raises(TypeError, match="peft LoraConfig or LoRASettings"):
        TTTConfig(finetune="lora", lora="r=4")


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"lr": float("inf")}, ValueError, "lr must be finite"),
        ({"grad_clip": float("nan")}, ValueError, "grad_clip must be finite"),
        ({"lambda_": float("nan")}, ValueError, "lambda_ must be finite"),
        ({"proximal": float("inf")}, ValueError, "proximal must be finite"),
        ({"k": "20"}, TypeError, "k must be an int"),
        ({"n": 2.5}, TypeError, "n must be an int"),
        ({"n": True}, TypeError, "n must be an int"),
        ({"lr": "1e-3"}, TypeError, "lr must be a number"),
        ({"distinct": 1}, TypeError, "distinct must be True or False"),
    ],
)
def test_numbers_must_be_finite_and_of_their_kind(values, error, message):
    with pytest.raises(error, match=message):
        TTTConfig(**values)


def test_numpy_numbers_are_accepted():
    import numpy as np

    config = TTTConfig(n=np.int64(7), lr=np.float32(1e-3))
    assert config.n == 7


def test_training_lr_gates_then_takes_the_first_band_that_holds_the_ratio():
    config = TTTConfig(lr=1e-4, variance_gate=0.5, variance_lr=((0.1, 3e-3), (0.3, 1e-3)))
    # r = σ²_n / σ²_0, here with σ²_0 = 2
    expected = {0.0: 3e-3, 0.1: 3e-3, 0.15: 1e-3, 0.3: 1e-3, 0.4: 1e-4, 0.5: 1e-4, 0.6: None}
    assert {r: config.training_lr(2 * r, 2.0) for r in expected} == expected
    # the gate compares σ²_n with gate · σ²_0; above it a prompt is gated whatever its band
    assert config.training_lr(1.0 + 1e-12, 2.0) is None
    assert TTTConfig(variance_gate=0.05, variance_lr=((0.1, 3e-3),)).training_lr(0.08, 1) is None
    ungated = TTTConfig(lr=1e-4, variance_gate=None, variance_lr=((0.1, 3e-3),))
    assert [ungated.training_lr(r, 1.0) for r in (0.05, 0.5, 1.0, 3.0)] == [3e-3] + [1e-4] * 3
    no_bands = TTTConfig(lr=1e-4, variance_gate=0.5, variance_lr=None)
    assert [no_bands.training_lr(r, 1.0) for r in (0.0, 0.5, 0.51)] == [1e-4, 1e-4, None]


@pytest.mark.parametrize(
    ("posterior", "prior"), [(0.9, 0.0), (0.0, 0.0), (0.9, None), (None, 1.0), (None, None)]
)
def test_training_lr_without_a_variance_ratio_is_the_plain_lr(posterior, prior):
    """No prior variance (0 or unknown) or no posterior: neither gate nor bands apply."""
    config = TTTConfig(lr=1e-4, variance_gate=0.01, variance_lr=((1.0, 3e-3),))
    assert config.training_lr(posterior, prior) == 1e-4


@pytest.mark.parametrize(("posterior", "prior"), [(-0.1, 1.0), (0.1, -1.0), (float("nan"), 1.0)])
def test_training_lr_refuses_a_negative_or_nan_variance(posterior, prior):
    with pytest.raises(ValueError, match="variance must be >= 0"):
        TTTConfig().training_lr(posterior, prior)
