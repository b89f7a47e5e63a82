"""Model names: a typo gets "did you mean", a hub name fails at once (before any
download attempt) when the hub cannot be used, and the message says why."""

from __future__ import annotations

import socket

import pytest

from siftlm.models import ModelNotFoundError, load_model, load_tokenizer, loading


@pytest.fixture()
def no_download(monkeypatch):
    """Any attempt of transformers to fetch a model fails the test."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("transformers was asked to load a model that cannot be there")

    for name in ("AutoModelForCausalLM", "AutoTokenizer"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("typo", ["house-smal", "house_small", "House-small", "house-medum"])
def test_a_typo_of_a_house_model_is_answered_with_did_you_mean(typo, no_download):
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'house-(small|medium)'\?"):
        load_model(typo)
    with pytest.raises(ModelNotFoundError, match="did you mean"):
        load_tokenizer(typo)


def test_a_typo_in_a_model_folder_is_named(no_download):
    with pytest.raises(
        ModelNotFoundError, match=r"folder 'models/house-smal' not found.*house-small"
    ):
        load_model("models/house-smal")


def test_unreachable_hub_fails_at_once_and_says_so(monkeypatch, tmp_path, no_download):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setattr(loading, "_in_hub_cache", lambda name: False)
    with pytest.raises(ModelNotFoundError) as error:
        load_model("some-org/some-model")
    message = str(error.value)
    assert "cannot be reached" in message and "127.0.0.1" in message
    assert "HF_HUB_OFFLINE" not in message  # it was not set: not blamed


def test_offline_setting_is_named_when_it_is_the_reason(monkeypatch, no_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "_in_hub_cache", lambda name: False)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_model("some-org/some-model")


def test_relative_model_folders_are_found_from_the_project_root(monkeypatch, tmp_path):
    from siftlm.defaults import HOUSE_TOKENIZER, PROJECT_ROOT

    if not (PROJECT_ROOT / HOUSE_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip("the house tokenizer is not in this checkout")
    monkeypatch.chdir(tmp_path)  # far from the checkout
    tokenizer = load_tokenizer(HOUSE_TOKENIZER)
    assert tokenizer.eos_token_id is not None
