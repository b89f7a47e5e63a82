"""Paths and defaults in one place; the thread count of the command-line entry points."""

from __future__ import annotations

import pytest
import torch

from siftlm import defaults


@pytest.mark.parametrize(
    ("cpus", "load", "threads"),
    [(2, 0.1, 2), (2, 0.9, 1), (2, 4.5, 1), (8, 2.5, 6), (8, 2.4, 6), (1, 0.0, 1), (16, 30.0, 1)],
)
def test_threads_are_the_cores_the_load_leaves_idle(cpus, load, threads):
    assert defaults.choose_threads(cpus=cpus, load=load) == threads


def test_the_user_s_thread_count_wins(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SIFTLM_THREADS", "1")
        assert defaults.configure_threads() == 1 == torch.get_num_threads()
        assert defaults.configure_threads(2) == 2 == torch.get_num_threads()
        monkeypatch.delenv("SIFTLM_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert defaults.configure_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "two")
        with pytest.raises(ValueError, match=r"\$OMP_NUM_THREADS must be a whole number"):
            defaults.configure_threads()
        with pytest.raises(ValueError, match="threads must be >= 1"):
            defaults.configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_house_paths_exist_in_a_checkout():
    assert (defaults.PROJECT_ROOT / "pyproject.toml").is_file()
    assert defaults.CORPUS_DIR.is_dir()
    assert defaults.models_dir() == defaults.PROJECT_ROOT / "models"
    assert defaults.HOUSE_TOKENIZER == f"models/{defaults.DEFAULT_MODEL}"


def test_default_store_path_names_source_and_embedder():
    assert defaults.default_store_path() == defaults.STORES_DIR / "minipile-all-MiniLM-L6-v2"
    assert str(defaults.default_store_path("minipile:test", "causal:models/house-small/")) == (
        "stores/minipile-test-house-small"
    )


def test_open_store_opens_an_existing_store_without_building(monkeypatch, tmp_path):
    """open-or-build: a store that is there is opened, never rebuilt."""
    import siftlm.datastore as datastore

    opened = []
    monkeypatch.setattr(datastore.Datastore, "open", staticmethod(lambda p: opened.append(p)))
    monkeypatch.setattr(
        datastore.Datastore, "build", staticmethod(lambda *a, **k: pytest.fail("rebuilt"))
    )
    monkeypatch.chdir(tmp_path)
    path = defaults.default_store_path()
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    defaults.open_store()
    assert opened == [path]


def test_old_homes_still_export_the_moved_names():
    from siftlm.bench import open_store
    from siftlm.datastore.cli import default_store_path
    from siftlm.training import tiny

    assert open_store is defaults.open_store
    assert default_store_path is defaults.default_store_path
    assert tiny.tiny_gpt2.__module__ == "siftlm.testing"
