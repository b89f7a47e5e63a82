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
