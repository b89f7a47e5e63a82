"""Ingest: every supported source becomes a list of (id, domain, text) documents.

Sources (see :func:`read_documents`):

- ``"minipile"`` (or ``"minipile:<split>"``): the embedded corpus, memory split by default;
- a list of documents: objects with ``id``/``domain``/``text`` attributes
  (``siftlm.data.Document``) or dicts with those keys;
- a ``.jsonl`` (optionally ``.gz``) or ``.parquet`` file, or a folder holding such files;
- a folder of plain-text files (``.txt``; ``.md`` and ``.rst`` too), read recursively;
- a Hugging Face ``datasets`` dataset saved with ``save_to_disk``.

For files, ``text_field``/``id_field``/``domain_field`` name the columns. A missing id
becomes ``<file>:<row>``, a missing domain the file's stem (plain-text files: the
sub-folder they sit in).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

TEXT_SUFFIXES = (".txt", ".md", ".rst")
_EMBEDDED = "minipile"


class SourceDocument(NamedTuple):
    id: str
    domain: str
    text: str


@dataclass(frozen=True)
class Fields:
    """Column names in JSONL / Parquet / datasets sources."""

    text: str = "text"
    id: str = "id"
    domain: str = "domain"


def describe_source(source: Any) -> str:
    """A short description of ``source`` for the manifest."""
    if isinstance(source, str | Path):
        text = str(source)
        if text == _EMBEDDED or text.startswith(_EMBEDDED + ":"):
            split = text.partition(":")[2] or "memory"
            return f"{_EMBEDDED}:{split}"
        return str(Path(text).expanduser().resolve())
    return f"<{type(source).__name__} of {len(source)} documents>"


def read_documents(
    source: Any, fields: Fields = Fields(), split: str | None = None
) -> list[SourceDocument]:
    """All documents of ``source``, in a deterministic order."""
    if isinstance(source, str) and (source == _EMBEDDED or source.startswith(_EMBEDDED + ":")):
        return list(_embedded(source.partition(":")[2] or "memory"))
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such source: {path} (nor is it 'minipile')")
        return list(_from_path(path, fields, split))
    if isinstance(source, Iterable):
        return [_coerce(item, i, fields) for i, item in enumerate(source)]
    raise TypeError(f"cannot ingest {type(source).__name__}")


def _embedded(split: str) -> Iterator[SourceDocument]:
    try:
        from siftlm.data import load_corpus
    except ImportError as error:  # pragma: no cover - the corpus ships with the project
        raise FileNotFoundError("the embedded corpus (siftlm.data) is not available") from error
    for doc in load_corpus(split):
        yield SourceDocument(str(doc.id), str(doc.domain), doc.text)


def _coerce(item: Any, position: int, fields: Fields) -> SourceDocument:
    if isinstance(item, SourceDocument):
        return item
    if isinstance(item, str):
        return SourceDocument(str(position), "default", item)
    if isinstance(item, dict):
        return _from_row(item, f"{position}", "default", fields)
    try:
        return SourceDocument(str(item.id), str(item.domain), item.text)
    except AttributeError as error:
        raise TypeError(
            f"document {position} has no id/domain/text: {type(item).__name__}"
        ) from error


def _from_row(
    row: dict, default_id: str, default_domain: str, fields: Fields, where: str | None = None
) -> SourceDocument:
    """A document from a record; ``where`` names it in errors (default: record <id>)."""
    where = where or f"record {default_id}"
    if fields.text not in row:
        raise ValueError(
            f"{where} has no text field {fields.text!r} "
            f"(fields: {', '.join(sorted(row))}); choose one with --text-field"
        )
    text = row[fields.text]
    if text is not None and not isinstance(text, str):
        raise ValueError(
            f"{where}: text field {fields.text!r} holds a "
            f"{type(text).__name__}, not a string; choose another --text-field or fix the data"
        )
    doc_id = row.get(fields.id)
    domain = row.get(fields.domain)
    return SourceDocument(
        default_id if doc_id is None else str(doc_id),
        default_domain if domain is None else str(domain),
        text or "",
    )


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_dict.json", "state.json", "dataset_info.json")
    )


def _from_path(path: Path, fields: Fields, split: str | None) -> Iterator[SourceDocument]:
    if _is_saved_dataset(path):
        yield from _from_saved_dataset(path, fields, split)
    elif path.is_dir():
        tables = sorted(p for p in path.rglob("*") if p.is_file() and _table_kind(p) is not None)
        texts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not tables and not texts:
            raise ValueError(f"{path}: no .txt/.md/.rst/.jsonl/.parquet files inside")
        for table in tables:
            yield from _from_table(table, fields)
        for file in texts:
            relative = file.relative_to(path)
            domain = relative.parts[0] if len(relative.parts) > 1 else path.name
            yield SourceDocument(relative.as_posix(), domain, _read_text(file))
    elif _table_kind(path) is not None:
        yield from _from_table(path, fields)
    elif path.suffix in TEXT_SUFFIXES:
        yield SourceDocument(path.name, path.parent.name, _read_text(path))
    else:
        raise ValueError(f"{path}: unknown format (expected .jsonl, .parquet, .txt or a folder)")


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _table_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def _from_table(path: Path, fields: Fields) -> Iterator[SourceDocument]:
    stem = path.name.split(".")[0]
    if _table_kind(path) == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as error:
            raise ValueError(f"{path}: not a readable Parquet file ({error})") from error
        rows = ((f"{path} row {i}", row) for i, row in enumerate(table.to_pylist()))
    else:
        rows = ((f"{path}:{number}", row) for number, row in _jsonl_rows(path))
    for i, (where, row) in enumerate(rows):
        yield _from_row(row, f"{path.name}:{i}", stem, fields, where)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each non-blank line; errors name the file and line."""
    opener = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if raw.strip():
                    yield number, _json_record(path, number, raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(
            f"{path}: the gzip stream is truncated or damaged after line {number} ({error})"
        ) from error


def _json_record(path: Path, number: int, raw: bytes) -> dict:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}:{number}: not UTF-8 (byte 0x{raw[error.start]:02x} at column "
            f"{error.start + 1}); JSONL must be UTF-8"
        ) from error
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from error
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{number}: expected a JSON object per line")
    return row


def _from_saved_dataset(path: Path, fields: Fields, split: str | None) -> Iterator[SourceDocument]:
    try:
        import datasets
    except ImportError as error:
        raise ValueError(
            f"{path} is a saved Hugging Face dataset: pip install 'siftlm[datasets]'"
        ) from error
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
        if chosen not in loaded:
            raise ValueError(f"{path}: choose a split with --split (one of {', '.join(names)})")
        loaded = loaded[chosen]
    elif split is not None:
        raise ValueError(f"{path} is a single dataset; it has no split {split!r}")
    for i, row in enumerate(loaded):
        yield _from_row(row, str(i), path.name, fields)
