"""``siftlm index build|info|search`` on a tiny JSONL corpus."""

from __future__ import annotations

import argparse
import json

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
