"""``--model_args`` of the siftlm backend: every TTTConfig field by name, clear errors."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")  # the optional extra siftlm[eval]

import dataclasses  # noqa: E402

from siftlm.harness.model import SiftLM  # noqa: E402
from siftlm.harness.options import make_ttt_config, parse_batch_size, split_model_args  # noqa: E402
from siftlm.training import TTTConfig  # noqa: E402


def test_every_ttt_field_is_accepted_by_name():
    values = {spec.name: "x" for spec in dataclasses.fields(TTTConfig)}
    backend, ttt = split_model_args({**values, "pretrained": "p", "device": "cpu"})
    assert set(ttt) == set(values) and backend == {"pretrained": "p", "device": "cpu"}


def test_names_and_aliases_map_to_the_config():
    config = make_ttt_config(
        split_model_args({"method": "sift-adaptive", "alpha": 0.05, "lambda": 0.1, "n": 7, "k": 9})[
            1
        ]
    )
    assert config == TTTConfig(method="sift", alpha=0.05, lambda_=0.1, n=7, k=9)
    assert config.name == "sift-adaptive"
    assert make_ttt_config({"method": "context", "n": 2}).mode == "context"
    assert make_ttt_config({"lora": {"r": 4}, "finetune": "lora"}).lora.r == 4


def test_unknown_names_are_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'lamda' \(did you mean 'lambda_'\?\).*'colour'"):
        split_model_args({"lamda": 0.1, "colour": 1, "n": 3})


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"n": 0}, "n .* must be >= 1"),
        ({"method": "sfit"}, "did you mean 'sift'"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"optimizer": "adagrad"}, "unknown optimizer"),
    ],
)
def test_invalid_values_are_errors_that_name_the_argument(values, match):
    with pytest.raises(ValueError, match=match) as error:
        make_ttt_config(values)
    assert str(error.value).startswith("model_args")


def test_batch_size():
    assert parse_batch_size(4, 64) == 4 and parse_batch_size("4", 64) == 4
    assert parse_batch_size("auto", 16) == 16 and parse_batch_size("auto:2", None) is None
    for bad in (0, "x", -2):
        with pytest.raises(ValueError, match="batch_size"):
            parse_batch_size(bad, 64)


def test_backend_refuses_bad_arguments(model, tokenizer):
    with pytest.raises(ValueError, match="unknown model_args for siftlm: 'stor'"):
        SiftLM(pretrained=model, tokenizer=tokenizer, method="base", stor="x")
    with pytest.raises(ValueError, match="needs its tokenizer"):
        SiftLM(pretrained=model, method="base")
    with pytest.raises(ValueError, match="invalid device 'gpu0'"):
        SiftLM(pretrained=model, tokenizer=tokenizer, method="base", device="gpu0")
    with pytest.raises(ValueError, match=r"model_args .*k \(candidates to retrieve\) must be >= 1"):
        SiftLM(pretrained=model, tokenizer=tokenizer, method="nn", k=0)
