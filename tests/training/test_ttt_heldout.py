"""Held-out protocols in the engine: exclusion by source unit and by domain, first-half
queries that score only the second half."""

from __future__ import annotations

import gc
import math
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch

from siftlm.evaluation.bpb import encode, prefix_token_id, rolling_windows, utf8_bytes
from siftlm.testing import tiny_gpt2, tiny_memory
from siftlm.training import TestTimeTrainer, TTTConfig
from siftlm.training.heldout import Exclusions, exclusions_for, first_half, source_unit

METHODS = ["sift", "nn", "nn-f", "us", "random", "mmr"]


@pytest.fixture()
def sourced_memory(memory):
    """The memory with corpus-style ids: every domain's texts come from two source files
    (``<domain>/a#<part>`` and ``<domain>/b#<part>``)."""
    doc_ids = [f"{domain}/{'ab'[i % 2]}#{i}" for i, domain in enumerate(memory.domains)]
    return tiny_memory(memory.texts, memory.domains, doc_ids=doc_ids)


def test_source_unit_drops_the_part():
    assert source_unit("legal/gpl-3#2") == "legal/gpl-3"
    assert source_unit("math/x") == "math/x"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("exclude", ["same-source", "same-domain"])
def test_no_exclusion_mode_ever_yields_an_excluded_candidate(
    method, exclude, make_model, tokenizer, sourced_memory, prompts
):
    config = TTTConfig(method=method, n=4, k=8, lr=1e-3, exclude=exclude)
    trainer = TestTimeTrainer(make_model(), tokenizer, sourced_memory, config)
    for prompt, doc_id, domain in zip(
        prompts, ["code/a#99", "law/b#99", "math/a#99"], ["code", "law", "math"], strict=True
    ):
        result = trainer.evaluate(prompt, doc_id=doc_id, domain=domain)
        picked = [sourced_memory.doc_ids[i] for i in result.selected_ids]
        assert result.n_selected >= 1
        if exclude == "same-source":
            assert all(source_unit(d) != source_unit(doc_id) for d in picked)
        else:
            assert all(sourced_memory.domains[i] != domain for i in result.selected_ids)


def test_fewer_than_k_left_is_a_clear_error(make_model, tokenizer, sourced_memory, prompts):
    left = len(sourced_memory) - sourced_memory.domains.count("code")
    ok = TTTConfig(n=3, k=left, exclude="same-domain")
    trainer = TestTimeTrainer(make_model(), tokenizer, sourced_memory, ok)
    result = trainer.evaluate(prompts[0], doc_id="code/a#9", domain="code")
    assert len(set(result.selected_ids)) >= 1
    too_many = TTTConfig(n=3, k=left + 1, exclude="same-domain")
    trainer = TestTimeTrainer(make_model(), tokenizer, sourced_memory, too_many)
    with pytest.raises(ValueError, match=rf"only {left} of .* remain .* k={left + 1}"):
        trainer.evaluate(prompts[0], doc_id="code/a#9", domain="code")


def test_exclusion_needs_the_documents_identity(make_model, tokenizer, sourced_memory, prompts):
    trainer = TestTimeTrainer(
        make_model(), tokenizer, sourced_memory, TTTConfig(n=2, k=4, exclude="same-source")
    )
    with pytest.raises(ValueError, match="needs the document's doc_id"):
        trainer.evaluate(prompts[0], domain="code")
    with pytest.raises(ValueError, match="no document to hold out"):
        trainer.generate(prompts[0], max_new_tokens=2)


def test_trainers_over_one_memory_share_its_exclusions(tokenizer, sourced_memory, prompts):
    config = TTTConfig(method="sift", n=3, k=8, lr=1e-3, exclude="same-source", variance_gate=None)

    def model():
        return tiny_gpt2(tokenizer, n_positions=64, seed=0)

    document = {"doc_id": "code/a#99", "domain": "code"}
    first = TestTimeTrainer(model(), tokenizer, sourced_memory, config)
    second = TestTimeTrainer(model(), tokenizer, sourced_memory, replace(config, method="nn"))
    shared = first.evaluate(prompts[0], **document)
    second.evaluate(prompts[0], **document)
    assert first._exclusions is second._exclusions is exclusions_for(sourced_memory)
    # the same result as with an Exclusions of its own (the code before the cache)
    alone = TestTimeTrainer(model(), tokenizer, sourced_memory, config)
    alone._exclusions = Exclusions(sourced_memory)
    own = alone.evaluate(prompts[0], **document)
    assert own.selected_ids == shared.selected_ids and own.nll_nats == shared.nll_nats
    for mode, key in [("same-source", "code/b#1"), ("same-domain", None)]:
        cached = exclusions_for(sourced_memory).ids(mode, key, "law")
        np.testing.assert_array_equal(cached, Exclusions(sourced_memory).ids(mode, key, "law"))


def test_exclusions_cache_is_per_memory_and_lets_it_go(memory, sourced_memory):
    assert exclusions_for(memory) is not exclusions_for(sourced_memory)
    other = tiny_memory(memory.texts, memory.domains)
    exclusions_for(other)
    gone = weakref.ref(other)
    del other
    gc.collect()
    assert gone() is None  # the cache does not keep a memory alive


def test_exclusions_need_per_sequence_metadata():
    with pytest.raises(TypeError, match="doc_ids/domains"):
        Exclusions(object())


def _per_token_nll(model, tokens, prefix_id, max_length):
    """Every token's NLL from the standard rolling windows, computed here by hand."""
    values = []
    model.eval()
    with torch.no_grad():
        for window in rolling_windows(tokens, prefix_id, max_length):
            ids = torch.tensor([window.context + window.continuation])
            logits = model(input_ids=ids[:, :-1]).logits[0, -len(window.continuation) :]
            log_probs = logits.float().log_softmax(-1)
            target = torch.tensor(window.continuation)
            values += (-log_probs.gather(-1, target[:, None]).squeeze(-1)).double().tolist()
    return values


@pytest.mark.parametrize("method", ["base", "sift"])
def test_first_half_scores_only_the_second_half(method, make_model, tokenizer, memory):
    text = " ".join(memory.texts[::2]) * 2  # several windows of 64 tokens
    tokens = encode(tokenizer, text)
    assert len(tokens) > 3 * 64
    start, prefix = first_half(tokenizer, text, tokens)
    assert start >= len(tokens) // 2 and text.startswith(prefix)
    config = TTTConfig(method=method, n=2, k=4, query="first-half")
    model = make_model()
    result = TestTimeTrainer(model, tokenizer, memory, config).evaluate(text)
    assert result.n_tokens == len(tokens) - start
    assert (
        result.n_bytes == utf8_bytes(text) - utf8_bytes(prefix) == utf8_bytes(text[len(prefix) :])
    )
    if method == "base":  # the second half's tokens keep the NLL of the full evaluation
        per_token = _per_token_nll(model, tokens, prefix_token_id(tokenizer), 64)
        assert result.nll_nats == pytest.approx(math.fsum(per_token[start:]), rel=1e-9)
        full = TestTimeTrainer(model, tokenizer, memory, TTTConfig(method="base")).evaluate(text)
        assert full.nll_nats == pytest.approx(math.fsum(per_token), rel=1e-9)


def test_first_half_adapts_to_the_first_half(make_model, tokenizer, memory, prompts):
    text = prompts[1] + " " + prompts[2]
    tokens = encode(tokenizer, text)
    _, prefix = first_half(tokenizer, text, tokens)
    half = TTTConfig(n=3, k=6, query="first-half")
    whole = TTTConfig(n=3, k=6)
    a = TestTimeTrainer(make_model(), tokenizer, memory, half).evaluate(text)
    b = TestTimeTrainer(make_model(), tokenizer, memory, whole).evaluate(text, query=prefix)
    assert a.selected_ids == b.selected_ids
    with pytest.raises(ValueError, match="conflict"):
        TestTimeTrainer(make_model(), tokenizer, memory, half).evaluate(text, query=prefix)


def test_first_half_needs_two_tokens(make_model, tokenizer, memory):
    trainer = TestTimeTrainer(
        make_model(), tokenizer, memory, TTTConfig(query="first-half", n=1, k=2)
    )
    with pytest.raises(ValueError, match="at least 2 tokens"):
        trainer.evaluate("x")
