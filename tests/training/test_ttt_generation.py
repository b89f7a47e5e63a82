"""Generation and input checks: no spurious transformers warnings (their causes are
fixed), the progress hook, a lone surrogate named."""

from __future__ import annotations

import pytest
from transformers import PreTrainedModel

from siftlm.evaluation.bpb import encode
from siftlm.testing import tiny_gpt2, tiny_tokenizer
from siftlm.training import TestTimeTrainer, TTTConfig


@pytest.fixture()
def padded_like_the_house_models(tokenizer):
    """A tiny GPT-2 whose pad token is its bos = eos, as the house models': every input
    starts with that token."""
    model = tiny_gpt2(tokenizer, n_positions=64, seed=0)
    model.config.pad_token_id = tokenizer.eos_token_id
    return model


@pytest.fixture()
def no_unmasked_pad(monkeypatch):
    """Fails where transformers would warn "We strongly recommend passing in an
    attention_mask" (a forward pass without a mask on an input holding the pad id).
    Checked on every call: transformers itself warns only once per process."""
    calls = []

    def check(self, input_ids, attention_mask):
        calls.append(attention_mask is not None)
        pad = self.config.pad_token_id
        if attention_mask is None and pad is not None and pad in input_ids[:, [-1, 0]]:
            raise AssertionError("forward pass on an input holding the pad id without a mask")

    monkeypatch.setattr(PreTrainedModel, "warn_if_padding_and_no_attention_mask", check)
    return calls


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_no_attention_mask_warning_in_evaluate_train_or_generate(
    padded_like_the_house_models, tokenizer, memory, prompts, no_unmasked_pad, finetune
):
    model = padded_like_the_house_models
    trainer = TestTimeTrainer(
        model, tokenizer, memory, TTTConfig(n=2, k=4, finetune=finetune, variance_gate=None)
    )
    trainer.evaluate(prompts[0])
    result = trainer.generate(prompts[1], max_new_tokens=4)
    assert result.steps >= 2 and no_unmasked_pad  # the check ran
    assert model.config.pad_token_id == tokenizer.eos_token_id  # left as it was


def test_long_texts_are_encoded_without_the_length_warning(prompts):
    tokenizer = tiny_tokenizer(prompts)
    tokenizer.model_max_length = 8
    ids = encode(tokenizer, " ".join(prompts * 3))
    assert len(ids) > 8
    flag = "sequence-length-is-longer-than-the-specified-maximum"
    assert not tokenizer.deprecation_warnings.get(flag, False)


def test_generate_reports_each_training_step(make_model, tokenizer, memory, prompts):
    trainer = TestTimeTrainer(
        make_model(), tokenizer, memory, TTTConfig(n=3, k=4, variance_gate=None)
    )
    seen: list[int] = []
    result = trainer.generate(prompts[0], max_new_tokens=2, on_step=seen.append)
    assert seen == list(range(result.steps + 1)) and result.steps >= 3


@pytest.mark.parametrize("where", ["prompt", "text", "query"])
def test_a_lone_surrogate_is_named(make_model, tokenizer, memory, where):
    trainer = TestTimeTrainer(make_model(), tokenizer, memory, TTTConfig(n=2, k=4))
    bad = "caf\udce9 au lait"  # what errors="surrogateescape" leaves of Latin-1 bytes
    call = {
        "prompt": lambda: trainer.generate(bad),
        "text": lambda: trainer.evaluate(bad),
        "query": lambda: trainer.evaluate("a fine text", query=bad),
    }[where]
    with pytest.raises(ValueError, match=r"lone surrogate '\\udce9' at character 3"):
        call()
