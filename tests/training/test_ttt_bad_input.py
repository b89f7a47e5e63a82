"""Bad input: a clear error or warning, and the base model untouched afterwards."""

from __future__ import annotations

import warnings

import pytest

from siftlm.evaluation.bpb import encode
from siftlm.testing import ngram_embedder
from siftlm.training import ListMemory, TestTimeTrainer, TTTConfig


@pytest.fixture()
def model_and_state(make_model, state_of):
    model = make_model()
    return model, state_of(model)


@pytest.mark.parametrize("finetune", ["full", "lora"])
@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_empty_or_whitespace_prompt(
    prompt, finetune, model_and_state, tokenizer, memory, assert_untouched
):
    model, before = model_and_state
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4, finetune=finetune))
    for call in (trainer.evaluate, trainer.generate):
        with pytest.raises(ValueError, match="empty or whitespace"):
            call(prompt)
    with pytest.raises(ValueError, match="empty or whitespace"), trainer.adapt(prompt):
        pass
    with pytest.raises(ValueError, match="query is empty"):
        trainer.evaluate("a real text", query=prompt)
    assert_untouched(model, before)


def test_a_prompt_longer_than_the_context_is_cut_with_a_warning(
    model_and_state, tokenizer, memory, prompts, assert_untouched
):
    model, before = model_and_state
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4, max_length=32))
    long_prompt = " ".join(prompts * 2)
    with pytest.warns(UserWarning, match="keeping its end"):
        result = trainer.generate(long_prompt, max_new_tokens=8)
    assert result.truncated
    assert len(encode(tokenizer, result.prompt)) <= 32 - 8 - 1
    assert long_prompt.endswith(result.prompt)
    assert_untouched(model, before)


def test_a_long_text_is_evaluated_whole_without_warning(
    model_and_state, tokenizer, memory, prompts, assert_untouched
):
    model, before = model_and_state
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4, max_length=32))
    long_text = " ".join(prompts * 2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(prompt|context|truncat).*")
        result = trainer.evaluate(long_text)
    assert result.n_tokens == len(encode(tokenizer, long_text)) > 32
    assert_untouched(model, before)


@pytest.mark.parametrize(
    ("kind", "names"),
    [("tokenizer", {"tokenizer_name": "gpt2"}), ("embedder", {"embedder": "all-MiniLM-L6-v2"})],
)
def test_a_datastore_built_with_another_tokenizer_or_embedder(
    kind, names, model_and_state, tokenizer, memory, assert_untouched
):
    model, before = model_and_state
    given = next(iter(names.values()))
    stored = memory.manifest[kind]["name"]
    with pytest.raises(ValueError, match=kind) as error:
        TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4), **names)
    assert repr(given) in str(error.value) and repr(stored) in str(error.value)
    # the matching names pass
    TestTimeTrainer(
        model,
        tokenizer,
        memory,
        TTTConfig(n=2, k=4),
        tokenizer_name="tiny-bpe",
        embedder="ngram-64",
    )
    assert_untouched(model, before)


def test_a_datastore_built_with_another_tokenizer_by_checksum(
    model_and_state, tokenizer, memory, assert_untouched
):
    chunking = pytest.importorskip("siftlm.datastore.chunking")
    model, before = model_and_state
    memory.manifest["tokenizer"] = {"name": "gpt2", "checksum": "sha256:0123456789abcdef"}
    with pytest.raises(ValueError, match="'gpt2' .*sha256:0123456789abcdef.* another") as error:
        TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4))
    assert chunking.tokenizer_checksum(tokenizer) in str(error.value)
    memory.manifest["tokenizer"]["checksum"] = chunking.tokenizer_checksum(tokenizer)
    TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4))
    assert_untouched(model, before)


def test_more_picks_than_candidates_for_a_method_that_never_repeats(
    model_and_state, tokenizer, memory, prompts, assert_untouched
):
    model, before = model_and_state
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(method="nn", n=5, k=4))
    with pytest.raises(ValueError, match="n=5"):
        trainer.evaluate(prompts[0])
    assert_untouched(model, before)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n": 0}, "n .* must be >= 1"),
        ({"k": 0}, "k .* must be >= 1"),
        ({"n": 5, "k": 3, "distinct": True}, "distinct"),
    ],
)
def test_n_or_k_out_of_range_in_the_config(values, message):
    with pytest.raises(ValueError, match=message):
        TTTConfig(**values)


def test_k_larger_than_the_datastore(model_and_state, tokenizer, memory, assert_untouched):
    model, before = model_and_state
    with pytest.raises(ValueError, match=f"k=100 .* {len(memory)} sequences"):
        TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=100))
    small = ListMemory(["one text", "another"], ngram_embedder())
    with pytest.raises(ValueError, match="k=3"):
        TestTimeTrainer(model, tokenizer, small, TTTConfig(n=1, k=3))
    assert_untouched(model, before)


def test_other_bad_settings(model_and_state, tokenizer, memory, prompts, assert_untouched):
    model, before = model_and_state
    with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
        TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4, max_length=65))
    with pytest.raises(ValueError, match="needs a datastore"):
        TestTimeTrainer(model, tokenizer, None, TTTConfig(n=2, k=4))
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=2, k=4))
    with pytest.raises(ValueError, match="max_new_tokens"):
        trainer.generate(prompts[0], max_new_tokens=64)
    with pytest.raises(TypeError, match="str"):
        trainer.evaluate(b"bytes")
    assert_untouched(model, before)
