"""Names that may be hub models fail fast, with a suggestion, when they cannot be loaded."""

from __future__ import annotations

import pytest

from siftlm import hub


@pytest.fixture
def online_env(monkeypatch):
    """No HF_HUB_OFFLINE (the suite sets it): decisions rest on reachability alone."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.mark.parametrize(
    ("spec", "pathlike"),
    [("./x", True), ("/abs/x", True), ("~/x", True), ("a/b/c", True), ("gpt2", False)],
)
def test_what_cannot_be_a_hub_id(spec, pathlike):
    assert hub.looks_like_path(spec) is pathlike


def test_a_local_first_part_makes_a_path(tmp_path):
    (tmp_path / "models").mkdir()
    assert hub.looks_like_path("models/house-smal", roots=[tmp_path])
    assert not hub.looks_like_path("org/name", roots=[tmp_path])


def test_missing_folder_suggests_its_sibling(tmp_path):
    (tmp_path / "house-small").mkdir()
    spec = str(tmp_path / "house-smal")
    with pytest.raises(FileNotFoundError, match=rf"no such folder; did you mean {spec}l\?"):
        hub.check_hub_name(spec, "tokenizer")


def test_offline_and_not_cached_is_refused_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_reachable", lambda: pytest.fail("no probe when offline"))
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set; did you mean gpt2"):
        hub.check_hub_name("gtp2", "tokenizer", ["gpt2", "bert"])


def test_unreachable_hub_is_refused_at_once(monkeypatch, online_env):
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    with pytest.raises(FileNotFoundError, match="huggingface.co cannot be reached"):
        hub.check_hub_name("no-such", "embedder")


def test_cached_model_loads_locally_when_the_hub_is_away(monkeypatch, online_env):
    monkeypatch.setattr(hub, "in_cache", lambda repo, filenames: True)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    assert hub.check_hub_name("org/cached", "embedder") is True
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    assert hub.check_hub_name("org/cached", "embedder") is False  # the library decides


def test_reachability_probe_on_a_closed_port():
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert hub.hub_reachable(f"http://127.0.0.1:{port}", timeout=0.5) is False
