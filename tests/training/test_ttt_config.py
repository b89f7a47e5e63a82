"""TTTConfig: validation, benchmark names, round trip."""

from __future__ import annotations

import json

import pytest

from siftlm.training import LoRASettings, TTTConfig


def test_a_default_trainer_adapts_as_the_paper_does(monkeypatch, tokenizer):
    """Behaviour, not a snapshot: with ``TTTConfig()`` the trainer retrieves k = 200
    candidates, selects n = 50 of them with SIFT (λ = 0.01, repeats allowed), takes one
    Adam step (lr 5e-5, gradients clipped at norm 1) per selected sequence, and restores."""
    import torch

    import siftlm.selection
    import siftlm.training.trainer as trainer_module
    from siftlm.testing import ngram_embedder, tiny_gpt2
    from siftlm.training import ListMemory, TestTimeTrainer

    texts = [f"note {i}: the court held that x + {i} = {2 * i}" for i in range(200)]
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
    assert seen["k"] == 200 and seen["n"] == 50
    assert seen["method"] == "sift" and seen["lambda_"] == 0.01 and not seen["distinct"]
    assert result.n_selected == 50 and result.steps >= 50
    (optimizer,) = optimizers
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["lr"] == 5e-5
    assert clips == [1.0] * result.steps


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
