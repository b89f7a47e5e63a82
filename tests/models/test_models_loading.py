"""Any causal LM by path (GPT-2 and Llama made here), house models by name, clear misses."""

from __future__ import annotations

import pytest
import torch

from siftlm.models import ModelNotFoundError, load_model, resolve_model_path
from siftlm.models.loading import models_dir
from siftlm.testing import tiny_gpt2, tiny_llama


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_load_model_by_path(tmp_path, tiny_tokenizer_dir, architecture):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    original = (tiny_gpt2 if architecture == "gpt2" else tiny_llama)(tokenizer).eval()
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


@pytest.mark.parametrize("name", ["house-small", "house-medium", "house-small-4x"])
def test_house_models_load_by_name(name):
    if not (models_dir() / name / "model.safetensors").is_file():
        pytest.skip(f"{name} not trained yet")
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_model(name)
    assert model.config.n_positions >= 256
    assert tokenizer.eos_token_id is not None
    direct = AutoModelForCausalLM.from_pretrained(models_dir() / name)
    assert direct.num_parameters() == model.num_parameters()
