"""Any causal LM by path (GPT-2 and Llama made here), house models by name, clear misses."""

from __future__ import annotations

import pytest
import torch

from siftlm.models import ModelNotFoundError, load_model, resolve_model_path
from siftlm.models.loading import models_dir


def tiny_config(architecture: str, vocab_size: int, eos_id: int):
    from transformers import GPT2Config, LlamaConfig

    if architecture == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=2,
            eos_token_id=eos_id,
            bos_token_id=eos_id,
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=eos_id,
        bos_token_id=eos_id,
    )


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_load_model_by_path(tmp_path, tiny_tokenizer_dir, architecture):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    original = AutoModelForCausalLM.from_config(
        tiny_config(architecture, len(tokenizer), tokenizer.eos_token_id)
    ).eval()
    original.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    model, loaded_tokenizer = load_model(str(tmp_path))
    assert model.config.model_type == architecture
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    ids = torch.tensor([loaded_tokenizer.encode("the cat sat", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, original(ids).logits)
    assert loaded_tokenizer.pad_token_id is not None

    half, _ = load_model(tmp_path, dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16


def test_unknown_model_names_itself_and_the_missing_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as error:
        load_model("no-such-org/no-such-model-xyz")
    message = str(error.value)
    assert "no-such-org/no-such-model-xyz" in message
    assert "HF_HUB_OFFLINE" in message and "no network" in message


def test_missing_house_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SIFTLM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="house-small"):
        resolve_model_path("house-small")


@pytest.mark.parametrize("name", ["house-small", "house-medium"])
def test_house_models_load_by_name(name):
    if not (models_dir() / name / "model.safetensors").is_file():
        pytest.skip(f"{name} not trained yet")
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_model(name)
    assert model.config.n_positions >= 256
    assert tokenizer.eos_token_id is not None
    direct = AutoModelForCausalLM.from_pretrained(models_dir() / name)
    assert direct.num_parameters() == model.num_parameters()
