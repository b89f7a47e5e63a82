"""A build replaces only a store: an existing target that is anything else is refused
before any work, and nothing in it is touched (issue 15, defect 1)."""

from __future__ import annotations

import shutil

import pytest

from siftlm.cli import main
from siftlm.datastore import Datastore, StoreError
from siftlm.datastore.build import build_store, work_dir


@pytest.fixture
def options(tiny_tokenizer, tiny_embedder):
    return {
        "embedder": str(tiny_embedder),
        "tokenizer": str(tiny_tokenizer),
        "show_progress": False,
    }


def _leftovers(target):
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}"))


def test_folder_with_other_files_is_refused_and_kept(tmp_path, documents, options):
    target = tmp_path / "d"
    (target / "notes").mkdir(parents=True)
    (target / "notes" / "a.txt").write_text("hi")
    with pytest.raises(StoreError, match=r"not a siftlm store \(it holds notes\)"):
        build_store(documents[:2], target, **options)
    assert (target / "notes" / "a.txt").read_text() == "hi"
    assert _leftovers(target) == [] and not work_dir(target).exists()


def test_build_into_its_own_source_folder_is_refused(tmp_path, capsys, options):
    # the reproduction: `siftlm index build d -o d`
    target = tmp_path / "d"
    (target / "notes").mkdir(parents=True)
    (target / "notes" / "a.txt").write_text("some text to index " * 20)
    argv = ["index", "build", str(target), "-o", str(target), "--no-progress"]
    argv += ["--embedder", options["embedder"], "--tokenizer", options["tokenizer"]]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"{target} exists and is not a siftlm store" in error and "Traceback" not in error
    assert (target / "notes" / "a.txt").read_text() == "some text to index " * 20


def test_regular_file_is_refused_and_kept(tmp_path, documents, options):
    target = tmp_path / "store"
    target.write_text("precious")
    with pytest.raises(StoreError, match="exists and is not a folder"):
        build_store(documents[:2], target, **options)
    assert target.read_text() == "precious"
    assert _leftovers(target) == []


def test_store_with_a_foreign_file_is_refused(tmp_path, built_store, documents, options):
    target = tmp_path / "copy"
    shutil.copytree(built_store, target)
    (target / "README.md").write_text("my notes on this store")
    with pytest.raises(StoreError, match="README.md"):
        build_store(documents[:2], target, **options)
    assert (target / "README.md").exists()
    Datastore.open(target)  # the store itself is intact too


def test_empty_folder_and_a_store_are_replaced(tmp_path, documents, options):
    target = tmp_path / "empty"
    target.mkdir()
    first = Datastore.build(documents[:2], target, **options)
    assert first.manifest.counts["documents"] == 2
    second = Datastore.build(documents[:3], target, **options)  # a store: rebuilt in place
    assert second.manifest.counts["documents"] == 3
    assert _leftovers(target) == [".empty.lock"]


def test_damaged_store_can_be_rebuilt(tmp_path, built_store, documents, options):
    target = tmp_path / "copy"
    shutil.copytree(built_store, target)
    (target / "manifest.json").write_text("{ damaged")
    (target / "index.faiss").unlink()
    store = Datastore.build(documents[:2], target, **options)
    assert store.manifest.counts["documents"] == 2
