"""A tokenizer or embedder name that cannot be loaded fails at once with one clear line
(issue 15, defect 7): no hub traceback, no minute of network retries."""

from __future__ import annotations

import pytest

from siftlm import hub
from siftlm.cli import main
from siftlm.datastore.build import build_store
from siftlm.datastore.embedders import load_embedder


@pytest.fixture
def unreachable_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _build(tmp_path, documents, **options):
    build_store(documents[:2], tmp_path / "store", show_progress=False, **options)


def test_unknown_tokenizer_offline(tmp_path, documents, tiny_embedder, offline):
    with pytest.raises(FileNotFoundError, match="'no-such'.* not a local folder.*HF_HUB_OFFLINE"):
        _build(tmp_path, documents, tokenizer="no-such", embedder=str(tiny_embedder))
    assert not (tmp_path / "store").exists()


def test_unknown_tokenizer_unreachable_hub(tmp_path, documents, tiny_embedder, unreachable_hub):
    with pytest.raises(FileNotFoundError, match="cannot be reached"):
        _build(tmp_path, documents, tokenizer="no-such", embedder=str(tiny_embedder))


def test_house_tokenizer_typo_suggests_the_house_name(tmp_path, documents, tiny_embedder, offline):
    with pytest.raises(FileNotFoundError, match="did you mean '?(models/)?house-small"):
        _build(tmp_path, documents, tokenizer="house-smal", embedder=str(tiny_embedder))


def test_tokenizer_folder_typo_suggests_the_folder(tmp_path, documents, tiny_embedder):
    typo = str(tmp_path / "models" / "house-smal")
    (tmp_path / "models" / "house-small").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no such folder; did you mean .*house-small"):
        _build(tmp_path, documents, tokenizer=typo, embedder=str(tiny_embedder))


def test_unknown_embedder_fails_before_chunking(tmp_path, documents, unreachable_hub):
    # the tokenizer is bad too: the embedder is checked first, before any work
    with pytest.raises(FileNotFoundError, match="embedder 'all-MiniLM-L6-v3'.*did you mean"):
        _build(tmp_path, documents, tokenizer="no-such", embedder="all-MiniLM-L6-v3")


def test_missing_causal_folder(tmp_path, tiny_tokenizer):
    with pytest.raises(FileNotFoundError, match="embedder causal:.*no such folder"):
        load_embedder(f"causal:{tmp_path / 'nothing-here'}")


def test_cli_prints_one_line(tmp_path, capsys, tiny_tokenizer, offline):
    source = tmp_path / "a.txt"
    source.write_text("text " * 50)
    argv = ["index", "build", str(source), "-o", str(tmp_path / "s"), "--no-progress"]
    assert main([*argv, "--tokenizer", str(tiny_tokenizer), "--embedder", "no-such"]) == 2
    error = capsys.readouterr().err
    assert "embedder 'no-such'" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
