"""Opening a store checks the embedder and every file against the manifest."""

from __future__ import annotations

import shutil

import pytest

from siftlm.datastore import Datastore, StoreError
from siftlm.datastore.embedders import load_embedder


@pytest.fixture
def store_copy(built_store, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(built_store, path)
    return path


def test_mismatched_embedder_names_both(built_store, tmp_path, tiny_embedder):
    Datastore.open(built_store, embedder=str(tiny_embedder))  # its own: fine
    other = tmp_path / "other-embedder"
    shutil.copytree(tiny_embedder, other)
    Datastore.open(built_store, embedder=str(other))  # same weights elsewhere: fine
    with pytest.raises(ValueError) as error:
        Datastore.open(built_store, embedder="all-MiniLM-L6-v2")
    message = str(error.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and str(tiny_embedder) in message


def test_mismatched_dimension_names_both(built_store, tiny_embedder):
    embedder = load_embedder(str(tiny_embedder))

    class Wider:
        name, revision, dim = embedder.name, embedder.revision, 64

    with pytest.raises(ValueError, match="dimension 32.*gives 64"):
        Datastore.open(built_store, embedder=Wider())


def test_truncated_file_is_detected(store_copy):
    path = store_copy / "embeddings.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StoreError, match="embeddings.npy is truncated"):
        Datastore.open(store_copy)


@pytest.mark.parametrize("name", ["chunks.arrow", "index.faiss", "embeddings.npy"])
def test_altered_byte_is_detected(store_copy, name):
    path = store_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"{name} was altered"):
        Datastore.open(store_copy)
    Datastore.open(store_copy, verify=False)  # sizes alone cannot see it: documented


def test_altered_manifest_is_detected(store_copy):
    path = store_copy / "manifest.json"
    path.write_text(path.read_text().replace('"max_tokens": 24', '"max_tokens": 25'))
    with pytest.raises(StoreError, match="manifest was altered"):
        Datastore.open(store_copy)
    path.write_text(path.read_text()[:50])
    with pytest.raises(StoreError, match="not valid JSON"):
        Datastore.open(store_copy)


def test_missing_files(store_copy, tmp_path):
    (store_copy / "index.faiss").unlink()
    with pytest.raises(StoreError, match="index.faiss is missing"):
        Datastore.open(store_copy)
    with pytest.raises(FileNotFoundError, match="no store"):
        Datastore.open(tmp_path / "nowhere")
