"""Multi-vector queries in the engine (``query_vectors="chunks"``): the query cut into
chunk targets, candidates by the union rule, selection for all targets; "one" unchanged."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from siftlm.datastore.chunking import count_tokens
from siftlm.selection import select
from siftlm.testing import ngram_embedder, single_thread, tiny_tokenizer
from siftlm.training import ListMemory, TestTimeTrainer, TTTConfig
from siftlm.training.adaptation import select_for_prompt
from siftlm.training.targets import embed_targets, retrieve, split_query

METHODS = ["sift", "nn", "random", "mmr"]
LONG = 6  # tokens per target for prompts that must give several targets


@pytest.fixture()
def chunked_memory(memory):
    """The test memory, recording a chunk length of 64 tokens (longer than any prompt)."""
    return ListMemory(
        memory.texts,
        ngram_embedder(),
        domains=memory.domains,
        doc_ids=[f"{domain}/{'ab'[i % 2]}#{i}" for i, domain in enumerate(memory.domains)],
        embedder="ngram-64",
        tokenizer="tiny-bpe",
        max_tokens=64,
    )


def no_stage(timings, name):
    from contextlib import nullcontext

    return nullcontext()


def without_timings(result) -> dict:
    values = result.to_dict()
    values.pop("timings")
    return values


# -- "one": bitwise the engine as it was --------------------------------------------------


@pytest.mark.parametrize("method", [*METHODS, "sift-adaptive"])
def test_one_vector_is_the_single_query_path(method, chunked_memory, tokenizer, prompts):
    """The selection of "one" is embed, search, select with the (d,) query, as before."""
    config = TTTConfig.from_name(method, n=4, k=8, alpha=0.5 if method == "sift-adaptive" else None)
    for prompt in prompts:
        adaptation = select_for_prompt(
            prompt, chunked_memory, tokenizer, config, exclude=None, stage=no_stage
        )
        query = chunked_memory.embed([prompt])
        hits = chunked_memory.search(query, 8)
        expected = select(
            query[0], hits.embeddings[0], 4, method=config.method, lambda_=config.lambda_,
            alpha=config.alpha, seed=config.seed,
        )  # fmt: skip
        kept = expected.kept()
        assert [item.id for item in adaptation.memory] == hits.ids[0][kept].tolist()
        assert adaptation.variances == tuple(expected.variances[: len(kept)].tolist())
        assert adaptation.prior_variance == float(expected.prior_variances)
        assert adaptation.n_targets is None


# -- cutting the query ----------------------------------------------------------------------


def test_a_short_query_is_one_target_with_the_same_picks(
    make_model, tokenizer, chunked_memory, prompts
):
    with single_thread():
        for method in METHODS:
            one = TTTConfig(method=method, n=3, k=8, variance_gate=None)
            chunks = dataclasses.replace(one, query_vectors="chunks")
            base = TestTimeTrainer(make_model(), tokenizer, chunked_memory, one)
            multi = TestTimeTrainer(make_model(), tokenizer, chunked_memory, chunks)
            for prompt in prompts:
                expected, result = base.evaluate(prompt), multi.evaluate(prompt)
                assert result.n_targets == 1 and expected.n_targets is None
                assert without_timings(result) == {**without_timings(expected), "n_targets": 1}


def test_a_long_query_gives_one_target_per_chunk(tokenizer, chunked_memory, prompts):
    text = " ".join(prompts)
    pieces = split_query(text, tokenizer, LONG)
    assert "".join(pieces) == text  # consecutive pieces of the whole text
    assert len(pieces) > 1 and max(count_tokens(tokenizer, pieces)) <= LONG
    config = TTTConfig(n=3, k=8, query_vectors="chunks", target_tokens=LONG)
    adaptation = select_for_prompt(
        text, chunked_memory, tokenizer, config, exclude=None, stage=no_stage
    )
    assert adaptation.n_targets == len(pieces)
    # the memory's chunk length when target_tokens is not given: one piece of 64
    whole = dataclasses.replace(config, target_tokens=None)
    assert select_for_prompt(
        text, chunked_memory, tokenizer, whole, exclude=None, stage=no_stage
    ).n_targets == len(split_query(text, tokenizer, 64))


def test_max_targets_keeps_evenly_spaced_pieces(tokenizer, prompts):
    text = " ".join(prompts)
    pieces = split_query(text, tokenizer, LONG)
    m = len(pieces)
    assert m >= 5
    assert split_query(text, tokenizer, LONG, max_targets=1) == pieces[:1]
    assert split_query(text, tokenizer, LONG, max_targets=2) == [pieces[0], pieces[-1]]
    three = split_query(text, tokenizer, LONG, max_targets=3)
    assert three == [pieces[0], pieces[round((m - 1) / 2)], pieces[-1]]
    assert split_query(text, tokenizer, LONG, max_targets=m + 5) == pieces


# -- candidates: the union rule ------------------------------------------------------------


def table_memory(vectors: np.ndarray, **kwargs) -> ListMemory:
    """A memory whose text "v<i>" embeds as ``vectors[i]`` (and "t<j>..." as given)."""
    lookup = {f"v{i}": row for i, row in enumerate(np.asarray(vectors, np.float32))}
    return ListMemory(list(lookup), lambda texts: np.stack([lookup[t] for t in texts]), **kwargs)


def test_candidates_of_a_hand_made_set():
    s = 1 / np.sqrt(2)
    vectors = [
        [1, 0, 0],  # v0: on target 1
        [0.9, 0.1, 0],  # v1: near target 1
        [0, 1, 0],  # v2: on target 2
        [0, 0.8, 0.2],  # v3: near target 2
        [0, 0, 1],  # v4: neither
        [s, s, 0],  # v5: between both
    ]
    memory = table_memory(np.array(vectors))
    targets = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    # target 1's top 3: v0 v1 v5; target 2's: v2 v3 v5; by max-cosine: v0 = v2 > v1 > v3 > v5
    hits = retrieve(memory, targets, 3, None)
    assert hits.ids.tolist() == [[0, 2, 1]]  # v0 before v2: equal scores, retrieved first
    assert hits.texts == [["v0", "v2", "v1"]]
    np.testing.assert_allclose(hits.scores[0], [1, 1, 0.9 / np.hypot(0.9, 0.1)], rtol=1e-6)
    np.testing.assert_array_equal(hits.embeddings[0], memory.embeddings[[0, 2, 1]])
    assert retrieve(memory, targets, 5, None).ids.tolist() == [[0, 2, 1, 3, 5]]
    # with v0 excluded: target 1 retrieves v1 v5 v3 instead
    assert retrieve(memory, targets, 3, [0]).ids.tolist() == [[2, 1, 3]]


@pytest.mark.parametrize("seed", range(5))
def test_candidates_are_the_k_nearest_to_the_set(seed):
    rng = np.random.default_rng(seed)
    memory = table_memory(rng.normal(size=(60, 8)))
    targets = memory.embed([f"v{i}" for i in rng.choice(60, 4, replace=False)])
    targets = targets + 0.3 * rng.normal(size=targets.shape).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    k = 7
    hits = retrieve(memory, targets, k, None)
    best = (memory.embeddings @ targets.T).max(axis=1)
    assert hits.ids[0].tolist() == np.argsort(-best, kind="stable")[:k].tolist()
    np.testing.assert_allclose(hits.scores[0], best[hits.ids[0]], rtol=1e-6)
    per_target = memory.search(targets, k).ids
    assert set(hits.ids[0].tolist()) <= set(per_target.ravel().tolist())
    excluded = hits.ids[0][::2].tolist()
    again = retrieve(memory, targets, k, excluded)
    assert not set(again.ids[0].tolist()) & set(excluded)
    allowed = np.setdiff1d(np.arange(60), excluded)
    expected = allowed[np.argsort(-best[allowed], kind="stable")[:k]]
    assert again.ids[0].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("method", "exclude"), list(itertools.product(METHODS, ["same-source", "same-domain"]))
)
def test_no_excluded_id_is_retrieved_in_chunk_mode(
    method, exclude, make_model, tokenizer, chunked_memory, prompts
):
    config = TTTConfig(
        method=method, n=3, k=8, exclude=exclude, query_vectors="chunks", target_tokens=LONG
    )
    trainer = TestTimeTrainer(make_model(), tokenizer, chunked_memory, config)
    text = " ".join(prompts)  # all three topics: every domain is near some target
    targets = embed_targets(text, chunked_memory, tokenizer, config)
    assert len(targets) > 1
    would_have_been_candidates = set()
    with single_thread():
        for doc_id, domain in [("code/a#99", "code"), ("law/b#99", "law"), ("math/a#9", "math")]:
            excluded = set(trainer._excluded(doc_id, domain).tolist())
            unfiltered = retrieve(chunked_memory, targets, 8, None).ids[0].tolist()
            would_have_been_candidates |= set(unfiltered) & excluded
            candidates = retrieve(chunked_memory, targets, 8, sorted(excluded))
            assert not set(candidates.ids[0].tolist()) & excluded
            result = trainer.evaluate(text, doc_id=doc_id, domain=domain)
            assert result.n_targets == len(targets) and result.n_selected >= 1
            assert not set(result.selected_ids) & excluded
    assert would_have_been_candidates  # the exclusions did remove candidates


# -- selection for all targets -------------------------------------------------------------

FRUIT = ["apple", "banana", "cherry", "grape", "lemon", "mango"]
WEATHER = ["river", "stone", "cloud", "storm", "valley", "ridge"]


def word_embedder(limit: int | None = None):
    """Counts of the topic words among the first ``limit`` characters (an embedder that
    sees only the start of a long text, as all-MiniLM-L6-v2 sees 256 wordpieces)."""
    vocabulary = FRUIT + WEATHER

    def embed(texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), len(vocabulary) + 1), np.float32)
        vectors[:, -1] = 0.1  # no text embeds as zero
        for row, text in enumerate(texts):
            for word in text[:limit].split():
                if word.strip(".,") in vocabulary:
                    vectors[row, vocabulary.index(word.strip(".,"))] += 1.0
        return vectors

    return embed


def posterior_variances(targets: np.ndarray, picks: np.ndarray, lambda_: float) -> np.ndarray:
    """σ²_n(q) = q·q - k_q^T (K + λI)^-1 k_q of each target given the picked embeddings."""
    gram = picks @ picks.T + lambda_ * np.eye(len(picks))
    cross = picks @ targets.T
    return (targets * targets).sum(1) - (cross * np.linalg.solve(gram, cross)).sum(0)


def test_targets_cover_both_topics_of_a_two_topic_prompt():
    texts = [f"{a} {b}." for pair in (FRUIT, WEATHER) for a, b in itertools.combinations(pair, 2)]
    prompt = " ".join(FRUIT * 3) + ". " + " ".join(WEATHER * 3) + "."
    tokenizer = tiny_tokenizer(texts + [prompt], vocab_size=300)
    memory = ListMemory(texts, word_embedder(limit=40), max_tokens=16)
    one = TTTConfig(n=6, k=len(texts), lambda_=0.1)
    chunks = dataclasses.replace(one, query_vectors="chunks")
    single = select_for_prompt(prompt, memory, tokenizer, one, exclude=None, stage=no_stage)
    multi = select_for_prompt(prompt, memory, tokenizer, chunks, exclude=None, stage=no_stage)
    targets = embed_targets(prompt, memory, tokenizer, chunks)
    assert multi.n_targets == len(targets) > 2
    topics = [
        {text.split()[0] in WEATHER for text in (i.text for i in a.memory)} for a in (single, multi)
    ]
    assert topics == [{False}, {False, True}]  # one vector sees the fruit only
    summed = [
        posterior_variances(targets, memory.embeddings[[i.id for i in a.memory]], 0.1).sum()
        for a in (single, multi)
    ]
    assert summed[1] < 0.5 * summed[0]
    # the reported variances are per target: the sum over the targets divided by m
    prior = (targets * targets).sum()
    np.testing.assert_allclose(multi.prior_variance, prior / len(targets), rtol=1e-6)
    np.testing.assert_allclose(multi.posterior_variance, summed[1] / len(targets), rtol=1e-5)


def test_the_variance_gate_compares_sums_over_the_targets(
    make_model, tokenizer, chunked_memory, prompts
):
    text = " ".join(prompts)
    config = TTTConfig(n=3, k=8, query_vectors="chunks", target_tokens=LONG, variance_gate=None)
    adaptation = select_for_prompt(
        text, chunked_memory, tokenizer, config, exclude=None, stage=no_stage
    )
    ratio = adaptation.posterior_variance / adaptation.prior_variance
    with single_thread():
        for gate, gated in [(ratio * 0.99, True), (min(1.0, ratio * 1.01), False)]:
            trainer = TestTimeTrainer(
                make_model(),
                tokenizer,
                chunked_memory,
                dataclasses.replace(config, variance_gate=gate),
            )
            result = trainer.evaluate(text)
            assert (result.steps == 0) is gated
            assert result.posterior_variance / result.prior_variance == pytest.approx(ratio)


def test_chunk_mode_is_deterministic_and_restores_bitwise(
    make_model, tokenizer, chunked_memory, prompts, state_of, assert_untouched
):
    text = " ".join(prompts)
    config = TTTConfig(
        n=3, k=8, lr=1e-3, query_vectors="chunks", target_tokens=LONG, variance_gate=None
    )
    model = make_model()
    before = state_of(model)
    with single_thread():
        trainer = TestTimeTrainer(model, tokenizer, chunked_memory, config)
        first = trainer.evaluate(text)
        for prompt in prompts:
            trainer.evaluate(prompt)
        again = trainer.evaluate(text)
        fresh = TestTimeTrainer(make_model(), tokenizer, chunked_memory, config).evaluate(text)
    assert first.steps == 3 and first.n_targets > 1
    assert without_timings(first) == without_timings(again) == without_timings(fresh)
    assert_untouched(model, before)


# -- bad input -------------------------------------------------------------------------------


def test_a_memory_without_chunk_length_needs_target_tokens(memory, tokenizer, prompts):
    config = TTTConfig(n=2, k=4, query_vectors="chunks")
    with pytest.raises(ValueError, match="records no chunk length .* pass target_tokens"):
        select_for_prompt(prompts[0], memory, tokenizer, config, exclude=None, stage=no_stage)
    fixed = dataclasses.replace(config, target_tokens=64)
    assert (
        select_for_prompt(
            prompts[0], memory, tokenizer, fixed, exclude=None, stage=no_stage
        ).n_targets
        == 1
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"query_vectors": "chunk"}, "unknown query_vectors 'chunk'.*did you mean 'chunks'"),
        ({"query_vectors": "chunks", "max_targets": 0}, "max_targets must be >= 1"),
        ({"query_vectors": "chunks", "target_tokens": 0}, "target_tokens must be >= 1"),
        ({"max_targets": 4}, "max_targets .* needs query_vectors='chunks'"),
        ({"target_tokens": 32}, "target_tokens .* needs query_vectors='chunks'"),
    ],
)
def test_bad_query_vector_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        TTTConfig(**overrides)
    with pytest.raises(TypeError, match="max_targets must be an int"):
        TTTConfig(query_vectors="chunks", max_targets=2.5)
