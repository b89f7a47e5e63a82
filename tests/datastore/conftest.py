"""Tiny corpora, a tiny byte-level BPE tokenizer and a tiny random sentence-transformers
model, all made here, so that the datastore tests run offline in seconds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from siftlm.datastore.ingest import SourceDocument

DOMAINS = {
    "code": "def function return value import module class object self argument loop",
    "legal": "license warranty permission copyright notice software liability granted",
    "verse": "love night moon heart sweet fair rose doth thou thee summer day",
    "math": "solve equation derivative integer prime factor sum product value compute",
}


def make_documents(n_per_domain: int = 6, words: int = 120, seed: int = 0) -> list[SourceDocument]:
    rng = random.Random(seed)
    docs = []
    for domain, vocabulary in DOMAINS.items():
        pool = vocabulary.split()
        for i in range(n_per_domain):
            length = rng.randint(words // 4, words)
            text = " ".join(rng.choice(pool) for _ in range(length))
            text = text.replace(" value ", " value, é ünïcode ✓\n")  # multi-byte characters
            docs.append(SourceDocument(f"{domain}-{i}", domain, text))
    return docs


@pytest.fixture(scope="session")
def documents() -> list[SourceDocument]:
    return make_documents()


def _training_text() -> list[str]:
    return [d.text for d in make_documents(n_per_domain=4, seed=1)] + [
        "The quick brown fox jumps over the lazy dog. 0123456789 ()[]{}"
    ]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer (like the house models') with model_max_length 24."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tokenizer.train_from_iterator(_training_text(), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", model_max_length=24
    )
    path = tmp_path_factory.mktemp("tokenizer")
    wrapped.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory) -> Path:
    """A random 2-layer BERT with mean pooling and normalisation, saved as a
    sentence-transformers model folder (dimension 32)."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as st_models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as st_models
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("embedder")
    wordpiece = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator(
        _training_text(), trainers.WordPieceTrainer(vocab_size=200, special_tokens=special)
    )
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[(t, wordpiece.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, model_max_length=64)
    bert_dir = root / "bert"
    tokenizer.save_pretrained(bert_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,  # spread-out random embeddings, so neighbours differ
    )
    BertModel(config).save_pretrained(bert_dir)
    transformer = st_models.Transformer(str(bert_dir), max_seq_length=64)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, st_models.Normalize()])
    path = root / "st"
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def make_docs():
    return make_documents


@pytest.fixture(scope="session")
def build_tiny(tiny_tokenizer, tiny_embedder):
    """``build(documents, path, **options)``: ``Datastore.build`` with the tiny tokenizer
    and embedder and no progress bar; ``options`` are further BuildConfig fields."""
    from siftlm.datastore import Datastore

    def build(documents, path, **options):
        options = {
            "embedder": str(tiny_embedder),
            "tokenizer": str(tiny_tokenizer),
            "show_progress": False,
            **options,
        }
        return Datastore.build(documents, path, **options)

    return build


@pytest.fixture(scope="session")
def built_store(tmp_path_factory, documents, build_tiny):
    """One float32 store over ``documents`` shared by the read-only tests."""
    path = tmp_path_factory.mktemp("stores") / "tiny"
    build_tiny(documents, path, dtype="float32")
    return path
