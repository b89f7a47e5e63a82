"""``siftlm index build|info|search`` on a tiny JSONL corpus."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from siftlm.datastore import cli


def run(argv: list[str]) -> int:
    # only this stage's commands: the test does not depend on the other stages' CLIs
    parser = argparse.ArgumentParser(prog="siftlm")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_registered_with_the_main_command():
    from siftlm.cli import COMMAND_MODULES

    assert "siftlm.datastore.cli" in COMMAND_MODULES


def test_default_store_paths():
    assert str(cli.default_store_path()) == "stores/minipile-all-MiniLM-L6-v2"
    assert str(cli.default_store_path("data/web.jsonl", "causal:models/house-small/")) == (
        "stores/web-house-small"
    )


def test_build_info_search(tmp_path, documents, tiny_tokenizer, tiny_embedder, capsys):
    source = tmp_path / "corpus.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": d.id, "domain": d.domain, "body": d.text}) + "\n" for d in documents
        )
    )
    store = tmp_path / "store"
    common = ["--embedder", str(tiny_embedder), "--tokenizer", str(tiny_tokenizer)]
    assert (
        run(
            [
                "index",
                "build",
                str(source),
                "-o",
                str(store),
                "--text-field",
                "body",
                "--max-tokens",
                "16",
                "--no-progress",
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"built {store}" in out and "<= 16 tokens" in out

    assert run(["index", "info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "per domain" in out and "verified" in out and "embeddings.npy" in out
    for domain in ("code", "legal", "verse", "math"):
        assert domain in out
    assert str(tiny_embedder) in out

    assert run(["index", "info", str(store), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["chunking"]["max_tokens"] == 16

    query = "license warranty permission copyright notice"
    assert run(["index", "search", query, "-k", "3", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.count("score") == 3 and "query 0" in out


def test_missing_store_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="index build"):
        run(["index", "info", str(tmp_path / "none")])


def _swap_two_vectors(index_file) -> None:
    """Swap the first two vectors of a flat index in place: same size, other contents."""
    import faiss
    import numpy as np

    index = faiss.read_index(str(index_file))
    vectors = index.reconstruct_n(0, index.ntotal)
    vectors[[0, 1]] = vectors[[1, 0]]
    swapped = faiss.IndexFlatIP(index.d)
    swapped.add(np.ascontiguousarray(vectors))
    faiss.write_index(swapped, str(index_file))


def test_search_verifies_the_store(tmp_path, built_store, capsys):
    import shutil

    store = tmp_path / "copy"
    shutil.copytree(built_store, store)
    size = (store / "index.faiss").stat().st_size
    _swap_two_vectors(store / "index.faiss")
    assert (store / "index.faiss").stat().st_size == size  # sizes alone cannot see it
    from siftlm.datastore import StoreError

    with pytest.raises(StoreError, match="index.faiss was altered"):
        run(["index", "search", "license warranty", "--store", str(store)])
    assert run(["index", "search", "license warranty", "--store", str(store), "--no-verify"]) == 0
    assert "query 0" in capsys.readouterr().out


def test_index_help_lists_every_action_in_plain_text(capsys):
    with pytest.raises(SystemExit):
        run(["index", "--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    for action in ("build", "precompute", "info", "search"):
        assert action in out


def test_build_options_come_from_build_config(capsys):
    import dataclasses

    from siftlm.datastore.config import BuildConfig

    with pytest.raises(SystemExit):
        run(["index", "build", "--help"])
    out = capsys.readouterr().out
    for spec in dataclasses.fields(BuildConfig):
        flag = spec.metadata["cli"].get("flag", "--" + spec.name.replace("_", "-"))
        assert flag in out, flag
    flat = " ".join(out.split())
    assert "(default: 32)" in flat
    assert not re.search(r"\(default:[^)]*\) \(default:", flat)  # no doubled defaults


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_tokens_must_be_positive(tmp_path, documents, tiny_tokenizer, tiny_embedder, value):
    source = tmp_path / "corpus.jsonl"
    source.write_text(json.dumps({"text": documents[0].text}) + "\n")
    argv = ["index", "build", str(source), "-o", str(tmp_path / "s"), "--no-progress"]
    argv += ["--embedder", str(tiny_embedder), "--tokenizer", str(tiny_tokenizer)]
    with pytest.raises(ValueError, match=f"max_tokens must be a positive.*got {value}"):
        run([*argv, "--max-tokens", value])
    assert not (tmp_path / "s").exists()
