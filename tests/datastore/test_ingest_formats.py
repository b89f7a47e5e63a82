"""Every ingest format yields the same documents (id, domain, text)."""

from __future__ import annotations

import gzip
import json

import pytest

from siftlm.datastore.ingest import Fields, SourceDocument, read_documents

DOCS = [
    SourceDocument("a", "code", "def f():\n    return 1\n"),
    SourceDocument("b", "verse", "Shall I compare thee to a summer's day? é ✓"),
    SourceDocument("c", "legal", "Permission is hereby granted, free of charge."),
]


def _rows(text_field: str = "text"):
    return [{"id": d.id, "domain": d.domain, text_field: d.text} for d in DOCS]


def test_jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()) + "\n", encoding="utf-8")
    assert read_documents(path) == DOCS


def test_jsonl_gz_with_other_text_field(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in _rows("content"))
    assert read_documents(str(path), Fields(text="content")) == DOCS
    with pytest.raises(ValueError, match="no text field 'text'.*content"):
        read_documents(path)


def test_jsonl_defaults_for_missing_id_and_domain(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n")
    assert read_documents(path) == [SourceDocument("notes.jsonl:0", "notes", "hello")]


def test_bad_jsonl_line_is_reported(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_documents(path)


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), path)
    assert read_documents(path) == DOCS


def test_folder_of_text_files(tmp_path):
    for doc in DOCS:
        (tmp_path / "corpus" / doc.domain).mkdir(parents=True)
        (tmp_path / "corpus" / doc.domain / f"{doc.id}.txt").write_text(doc.text, encoding="utf-8")
    (tmp_path / "corpus" / "top.txt").write_text("at the top")
    (tmp_path / "corpus" / "ignored.bin").write_bytes(b"\x00\x01")
    got = read_documents(tmp_path / "corpus")
    expected = sorted(
        [SourceDocument(f"{d.domain}/{d.id}.txt", d.domain, d.text) for d in DOCS]
        + [SourceDocument("top.txt", "corpus", "at the top")]
    )
    assert sorted(got) == expected


def test_saved_hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    single = datasets.Dataset.from_list(_rows())
    single.save_to_disk(str(tmp_path / "single"))
    assert read_documents(tmp_path / "single") == DOCS
    both = datasets.DatasetDict({"train": single, "extra": single.select([0])})
    both.save_to_disk(str(tmp_path / "dict"))
    assert read_documents(tmp_path / "dict") == DOCS  # "train" by default
    assert read_documents(tmp_path / "dict", split="extra") == DOCS[:1]


def test_list_of_documents_and_dicts():
    from siftlm.data import Document

    documents = [Document(d.id, d.domain, "pkg 1.0", "MIT", d.text) for d in DOCS]
    assert read_documents(documents) == DOCS
    assert read_documents(_rows()) == DOCS


def test_embedded_corpus(tmp_path, monkeypatch):
    """'minipile' reads the memory split through siftlm.data.load_corpus."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{**r, "source": "test 1.0", "license": "MIT"} for r in _rows()]
    for split in ("memory", "validation"):
        pq.write_table(
            pa.Table.from_pylist(rows[: 3 if split == "memory" else 1]),
            tmp_path / f"{split}.parquet",
        )
    monkeypatch.setenv("SIFTLM_CORPUS_DIR", str(tmp_path))
    assert read_documents("minipile") == DOCS
    assert read_documents("minipile:validation") == DOCS[:1]


def test_missing_source():
    with pytest.raises(FileNotFoundError, match="no such source"):
        read_documents("/nonexistent/corpus.jsonl")


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine"}\n\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"{path}:3: not UTF-8 \(byte 0xe9 at column 14\)"):
        read_documents(path)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    rows = "".join(json.dumps({"text": f"document {i} " * 40}) + "\n" for i in range(200))
    whole = gzip.compress(rows.encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=rf"{path}: the gzip stream is truncated or damaged"):
        read_documents(path)


@pytest.mark.parametrize("value", [["a", "b"], {"a": 1}, 3, 2.5, True])
def test_text_that_is_not_a_string_is_refused(tmp_path, value):
    path = tmp_path / "typed.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": value}) + "\n")
    kind = type(value).__name__
    with pytest.raises(ValueError, match=rf"{path}:2: text field 'text' holds a {kind}"):
        read_documents(path)
    with pytest.raises(ValueError, match=rf"record 0: text field 'body' holds a {kind}"):
        read_documents([{"body": value}], Fields(text="body"))


def test_null_text_is_an_empty_document(tmp_path):
    path = tmp_path / "null.jsonl"
    path.write_text(json.dumps({"text": None, "id": 7}) + "\n")
    assert read_documents(path) == [SourceDocument("7", "null", "")]
