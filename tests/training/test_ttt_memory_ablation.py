"""Memory ablations without rebuilding the memory: a seeded fraction of it (excluded at
search time) and injected exact or near copies (merged with its results by score)."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.testing import ngram_embedder
from siftlm.training import ListMemory
from siftlm.training.heldout import Exclusions
from siftlm.training.memory_copies import DuplicatedMemory, duplicated_ids, near_copy_text
from siftlm.training.memory_subset import MemorySubset, kept_ids

datastore = pytest.importorskip("siftlm.datastore")

N = 101


def random_memory(n: int = N, dim: int = 16, seed: int = 0) -> ListMemory:
    """n texts "t<i>" with random embeddings, two domains, documents of 3 chunks."""
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    by_text = {f"t{i}": vectors[i] for i in range(n)}
    return ListMemory(
        list(by_text),
        lambda texts: np.stack([by_text[t] for t in texts]),
        domains=["a" if i % 2 else "b" for i in range(n)],
        doc_ids=[f"d{i // 3}" for i in range(n)],
    )


def word_memory(n: int = 40) -> ListMemory:
    rng = np.random.default_rng(3)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, size=6)) for _ in range(3000)]
    texts = [" ".join(rng.choice(vocabulary, size=30)) for _ in range(n)]
    return ListMemory(texts, ngram_embedder(dim=64), doc_ids=[f"d{i}" for i in range(n)])


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_a_fraction_keeps_round_f_n_ids_and_returns_no_other(fraction):
    memory = random_memory()
    subset = MemorySubset(memory, fraction, seed=7)
    assert len(subset) == round(fraction * N)
    assert len(subset.kept) + len(subset.dropped) == N
    every = subset.search(memory.embeddings[:4], k=len(subset))
    for row in every.ids:
        assert sorted(row.tolist()) == subset.kept.tolist()  # all kept, nothing else
    some = subset.search(memory.embeddings[:4], k=5)
    assert np.isin(some.ids, subset.kept).all()
    with pytest.raises(ValueError, match="remain after excluding|out of range"):
        subset.search(memory.embeddings[:1], k=len(subset) + 1)


def test_fractions_are_deterministic_nested_and_seeded():
    assert kept_ids(N, 0.5, seed=1).tolist() == kept_ids(N, 0.5, seed=1).tolist()
    assert kept_ids(N, 0.5, seed=1).tolist() != kept_ids(N, 0.5, seed=2).tolist()
    assert set(kept_ids(N, 0.25, seed=1)) <= set(kept_ids(N, 0.5, seed=1))
    assert kept_ids(N, 1.0).tolist() == list(range(N))
    with pytest.raises(ValueError, match="fraction"):
        kept_ids(N, 0.0)


def test_a_fraction_composes_with_held_out_exclusion():
    memory = random_memory()
    subset = MemorySubset(memory, 0.5, seed=3)
    excluded = Exclusions(subset).ids("same-domain", None, "a")  # the odd ids
    left = np.setdiff1d(subset.kept, excluded)
    result = subset.search(memory.embeddings[:3], k=len(left), exclude=excluded)
    for row in result.ids:
        assert sorted(row.tolist()) == left.tolist()


def test_a_fraction_of_a_datastore_goes_through_its_faiss_selector(tmp_path):
    memory = random_memory(n=60)
    store = datastore.Datastore.build(
        [
            {"id": d, "text": t, "domain": dom}
            for t, d, dom in zip(memory.texts, memory.doc_ids, memory.domains, strict=True)
        ],
        tmp_path / "store",
        embedder=_ListEmbedder(memory),
        tokenizer=_tokenizer(memory.texts),
        max_tokens=32,
        show_progress=False,
        precomputed=None,
    )
    subset = MemorySubset(store, 0.25, seed=0)
    queries = np.asarray(store.embeddings[:5], np.float32)
    result = subset.search(queries, k=len(subset))
    assert all(sorted(row.tolist()) == subset.kept.tolist() for row in result.ids)
    # the same top 3 as an exact search over the kept rows
    vectors = np.asarray(store.embeddings, np.float32)[subset.kept]
    best = subset.kept[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :3]]
    assert subset.search(queries, k=3).ids.tolist() == best.tolist()


class _ListEmbedder:
    """The datastore's Embedder protocol over a ListMemory's fixed vectors."""

    revision = "v1"

    def __init__(self, memory: ListMemory) -> None:
        self.memory, self.dim, self.name = memory, memory.embeddings.shape[1], "fixed"

    def encode(self, texts, batch_size=32, progress=None):
        return self.memory.embed(list(texts))

    def token_lengths(self, texts):
        return np.array([len(t) for t in texts], dtype=np.int64)


def _tokenizer(texts):
    from siftlm.testing import tiny_tokenizer

    return tiny_tokenizer(list(texts))


def test_exact_copies_have_their_own_ids_the_texts_scores_and_rank_next_to_the_original():
    memory = random_memory()
    duplicated = DuplicatedMemory(memory, 1.0, "exact", seed=0)  # every sequence copied
    assert len(duplicated) == 2 * N
    query = memory.embeddings[10] + 0.05  # nearest chunk: 10 (checked below)
    plain = memory.search(query, k=5)
    assert plain.ids[0, 0] == 10
    result = duplicated.search(query, k=10)
    ids = result.ids[0].tolist()
    assert ids[:2] == [10, N + 10]  # the copy ranks right after its original
    # every original of the plain top 5 is followed by its copy, same text and score
    assert ids[0::2] == plain.ids[0].tolist()
    assert ids[1::2] == [N + i for i in plain.ids[0].tolist()]
    for j in range(0, 10, 2):
        assert result.scores[0, j] == result.scores[0, j + 1]
        assert result.texts[0][j] == result.texts[0][j + 1]
        assert result.doc_ids[0][j] == result.doc_ids[0][j + 1]
        np.testing.assert_array_equal(result.embeddings[0, j], result.embeddings[0, j + 1])
    assert duplicated.text(N + 10) == memory.texts[10]


def test_several_exact_copies_per_sequence_rank_in_a_row_after_the_original():
    memory = random_memory()
    duplicated = DuplicatedMemory(memory, 1.0, "exact", seed=0, copies=3)
    assert len(duplicated) == 4 * N
    assert duplicated.originals.tolist() == np.repeat(np.arange(N), 3).tolist()
    query = memory.embeddings[10] + 0.05
    plain = memory.search(query, k=3)
    ids = duplicated.search(query, k=12).ids[0].tolist()
    expected = []
    for i in plain.ids[0].tolist():  # each original, then its 3 copies (ids in a row)
        expected += [i, N + 3 * i, N + 3 * i + 1, N + 3 * i + 2]
    assert ids == expected
    assert {duplicated.text(j) for j in ids[:4]} == {memory.texts[10]}


@pytest.mark.parametrize("copies", [0, -1, 1.5, True])
def test_bad_copies_are_refused(copies):
    with pytest.raises(ValueError, match="copies"):
        DuplicatedMemory(random_memory(), 1.0, "exact", copies=copies)


def test_several_near_copies_are_refused():
    with pytest.raises(ValueError, match="exact copies only"):
        DuplicatedMemory(random_memory(), 1.0, "near", copies=2)


def test_copies_at_a_rate_and_their_exclusion():
    memory = random_memory()
    originals = duplicated_ids(N, 0.3, seed=5)
    assert 0.15 * N < len(originals) < 0.45 * N
    assert originals.tolist() == duplicated_ids(N, 0.3, seed=5).tolist()
    pooled = duplicated_ids(N, 0.3, seed=5, pool=range(50))
    assert pooled.tolist() == [i for i in originals.tolist() if i < 50]  # same draw, restricted
    duplicated = DuplicatedMemory(memory, 0.3, "exact", seed=5)
    assert duplicated.originals.tolist() == originals.tolist()
    source = memory.doc_ids[int(originals[0])]
    held_out = Exclusions(duplicated).ids("same-source", source, None)
    assert N in held_out.tolist()  # the copy goes with its original's source
    result = duplicated.search(memory.embeddings[:3], k=40, exclude=held_out)
    assert not np.isin(result.ids, held_out).any()
    assert (result.ids >= N).any()


def test_near_copies_change_a_tenth_of_the_words_and_are_embedded_once(tmp_path):
    memory = word_memory()
    cache = tmp_path / "copies.npz"
    duplicated = DuplicatedMemory(memory, 0.5, "near", seed=1, cache=cache)
    assert len(duplicated.originals) > 5
    for original, text in zip(duplicated.originals.tolist(), duplicated.texts, strict=True):
        before, after = memory.texts[original].split(), text.split()
        assert len(before) == len(after)
        changed = sum(a != b for a, b in zip(before, after, strict=True))
        assert 1 <= changed <= round(0.1 * len(before))
    np.testing.assert_allclose(duplicated.copy_embeddings, memory.embed(duplicated.texts))
    assert cache.exists()
    # a second memory with the same copies reads them from the cache, embedding nothing
    again = DuplicatedMemory(memory, 0.5, "near", seed=1, cache=cache)
    again.base = _NoEmbed(memory)
    np.testing.assert_array_equal(again.copy_embeddings, duplicated.copy_embeddings)
    top = duplicated.search(memory.embeddings[int(duplicated.originals[0])], k=2)
    assert set(top.ids[0].tolist()) == {int(duplicated.originals[0]), len(memory)}


class _NoEmbed:
    def __init__(self, memory):
        self.memory = memory

    def embed(self, texts):
        raise AssertionError("embedded again instead of reading the cache")


def test_near_copy_text_keeps_whitespace_and_replaces_with_donor_words():
    rng = np.random.default_rng(0)
    text = "one two  three\nfour five six seven eight nine ten"
    copy = near_copy_text(text, "ZZZ", 0.1, rng)
    assert copy == text.replace(next(w for w in text.split() if w not in copy.split()), "ZZZ")
