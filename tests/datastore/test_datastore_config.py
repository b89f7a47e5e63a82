"""``BuildConfig``: one configuration for ``build_store``, ``Datastore.build`` and the CLI."""

from __future__ import annotations

import dataclasses

import pytest

from siftlm.datastore import Datastore
from siftlm.datastore.build import build_store
from siftlm.datastore.config import BuildConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_tokens", 0, "max_tokens must be a positive"),
        ("max_tokens", True, "max_tokens must be a positive"),
        ("max_tokens", 2.5, "max_tokens must be a positive"),
        ("index", "annoy", "unknown index 'annoy'"),
        ("dtype", "int8", "unknown dtype 'int8'"),
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("shard_size", -1, "shard_size must be a positive integer"),
        ("recall_target", float("nan"), r"recall_target must be in \(0, 1\]"),
        ("recall_target", 1.5, r"recall_target must be in \(0, 1\]"),
        ("text_field", "", "text_field must be a column name"),
        ("precomputed", "yes", "precomputed must be 'auto', None"),
        ("embedder", " ", "embedder must name a model"),
    ],
)
def test_bad_values_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        BuildConfig(**{field: value})


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="unknown build option.*max_token\\b"):
        BuildConfig().replace(max_token=16)
    with pytest.raises(TypeError, match="unknown build option"):
        build_store([], "unused", max_token=16)


def test_every_field_has_help():
    for spec in dataclasses.fields(BuildConfig):
        assert spec.metadata["help"], spec.name


def test_config_and_options_give_the_same_store(tmp_path, documents, tiny_tokenizer, tiny_embedder):
    config = BuildConfig(
        embedder=str(tiny_embedder),
        tokenizer=str(tiny_tokenizer),
        max_tokens=16,
        dtype="float32",
        show_progress=False,
    )
    by_config = Datastore.build(documents[:4], tmp_path / "a", config)
    by_options = Datastore.build(
        documents[:4],
        tmp_path / "b",
        embedder=str(tiny_embedder),
        tokenizer=str(tiny_tokenizer),
        max_tokens=16,
        dtype="float32",
        show_progress=False,
    )
    changed = Datastore.build(documents[:4], tmp_path / "c", config, max_tokens=8)
    assert by_config.manifest.chunks_sha256 == by_options.manifest.chunks_sha256
    assert by_config.manifest.chunking["max_tokens"] == 16
    assert changed.manifest.chunking["max_tokens"] == 8
