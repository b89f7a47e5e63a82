"""The engine on a real siftlm Datastore (built on the spot with a tiny embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.testing import ngram_embedder, tiny_gpt2, tiny_tokenizer
from siftlm.training import TestTimeTrainer, TTTConfig

datastore = pytest.importorskip("siftlm.datastore")


class NgramEmbedder:
    """The datastore's Embedder protocol over hashed character trigrams."""

    name, revision, dim = "ngram-64", "v1", 64

    def __init__(self) -> None:
        self._embed = ngram_embedder(self.dim)

    def encode(self, texts, batch_size=32, progress=None):
        vectors = self._embed(list(texts))
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def token_lengths(self, texts):
        return np.array([len(text) for text in texts], dtype=np.int64)


@pytest.fixture(scope="module")
def store_and_tokenizer(tmp_path_factory, memory_documents, tokenizer):
    store = datastore.Datastore.build(
        memory_documents,
        tmp_path_factory.mktemp("store") / "store",
        embedder=NgramEmbedder(),
        tokenizer=tokenizer,
        max_tokens=32,
        show_progress=False,
        precomputed=None,
    )
    return store, tokenizer


def test_evaluate_and_generate_on_a_datastore(
    store_and_tokenizer, prompts, state_of, assert_untouched
):
    store, tokenizer = store_and_tokenizer
    model = tiny_gpt2(tokenizer)
    before = state_of(model)
    trainer = TestTimeTrainer(
        model, tokenizer, store, TTTConfig(variance_gate=None, n=3, k=8), embedder="ngram-64"
    )
    result = trainer.evaluate(prompts[1], doc_id="p", domain="law")
    assert result.steps == 3 and all(0 <= i < len(store) for i in result.selected_ids)
    generation = trainer.generate(prompts[1], max_new_tokens=4)
    assert [item.id for item in generation.memory] == list(result.selected_ids)
    assert [item.text for item in generation.memory] == [store.text(i) for i in result.selected_ids]
    assert [item.domain for item in generation.memory] == [
        store.domain(i) for i in result.selected_ids
    ]
    assert_untouched(model, before)


def test_a_datastore_of_another_tokenizer_or_embedder(store_and_tokenizer, prompts):
    store, tokenizer = store_and_tokenizer
    other = tiny_tokenizer(prompts, vocab_size=300)
    with pytest.raises(ValueError, match="tokenizer .* is another"):
        TestTimeTrainer(tiny_gpt2(other), other, store, TTTConfig(variance_gate=None, n=3, k=8))
    with pytest.raises(ValueError, match="ngram-64 .*not with .*MiniLM"):
        TestTimeTrainer(
            tiny_gpt2(tokenizer),
            tokenizer,
            store,
            TTTConfig(variance_gate=None, n=3, k=8),
            embedder="all-MiniLM-L6-v2",
        )
    with pytest.raises(ValueError, match=f"exceed the datastore's {len(store)} sequences"):
        TestTimeTrainer(
            tiny_gpt2(tokenizer),
            tokenizer,
            store,
            TTTConfig(variance_gate=None, n=3, k=len(store) + 1),
        )


def test_chunk_targets_on_a_datastore_use_its_chunk_length(store_and_tokenizer, prompts):
    from siftlm.datastore.chunking import count_tokens
    from siftlm.training.targets import split_query

    store, tokenizer = store_and_tokenizer
    text = " ".join(prompts * 2)
    pieces = split_query(text, tokenizer, 32)
    assert len(pieces) > 1 and max(count_tokens(tokenizer, pieces)) <= 32
    config = TTTConfig(n=3, k=8, variance_gate=None, query_vectors="chunks", exclude="same-domain")
    trainer = TestTimeTrainer(tiny_gpt2(tokenizer), tokenizer, store, config)
    result = trainer.evaluate(text, doc_id="p", domain="law")
    assert result.n_targets == len(pieces)  # the manifest's max_tokens: 32
    assert result.steps == 3 and all(store.domain(i) != "law" for i in result.selected_ids)
