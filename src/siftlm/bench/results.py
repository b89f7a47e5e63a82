"""Results on disk: one JSON line per (method, document), appended as they finish.

An interrupted run leaves at most one partial last line; ``ResultsFile`` drops it and
the run resumes after the last complete result. Each line is flushed and fsync'd before
the next document starts, so a crash loses at most the document in progress.

Workers that share the documents (``rank`` of ``world_size``) each append to their own
file, ``results-<rank>-of-<world_size>.jsonl``; a single worker writes ``results.jsonl``.
Every ``results*.jsonl`` of a folder counts as done work, whoever wrote it, so a run may
be resumed with another number of workers, and ``load_results`` merges them.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from siftlm.training import DocumentResult

PATTERN = "results*.jsonl"


def results_path(folder: str | Path, rank: int = 0, world_size: int = 1) -> Path:
    """The file that worker ``rank`` of ``world_size`` appends to."""
    name = "results.jsonl" if world_size == 1 else f"results-{rank}-of-{world_size}.jsonl"
    return Path(folder) / name


def _complete_records(path: Path, data: bytes | None = None):
    """The records of ``path``'s complete lines (everything after the last newline is a
    torn write of a run still in progress, and is skipped). A complete line that is not
    JSON is an error naming the file and line: the file was altered."""
    if data is None:
        data = path.read_bytes()
    for number, line in enumerate(data[: data.rfind(b"\n") + 1].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}: line {number} is not valid JSON ({error}); "
                "the file was altered, not just interrupted"
            ) from error


class ResultsFile:
    """A worker's results file: read what is done (in every results file of its folder),
    append what finishes (to its own)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: set[tuple[str, str]] = set()
        if self.path.exists():
            self._recover()
        for other in sorted(self.path.parent.glob(PATTERN)):
            if other != self.path:  # another worker's, maybe still running
                self.done.update((r["method"], r["doc_id"]) for r in _complete_records(other))

    def _recover(self) -> None:
        data = self.path.read_bytes()
        self.done.update((r["method"], r["doc_id"]) for r in _complete_records(self.path, data))
        end = data.rfind(b"\n") + 1
        if end < len(data):  # drop the torn write, so that appends start on a new line
            with open(self.path, "r+b") as handle:
                handle.truncate(end)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.done

    def append(self, result: DocumentResult) -> None:
        line = json.dumps(result.to_dict(), sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.done.add((result.method, result.doc_id))


def load_results(path: str | Path) -> dict[str, list[DocumentResult]]:
    """Results by method (a results folder: all its ``results*.jsonl`` merged, in file
    then line order; or one results file). A (method, document) found twice counts once."""
    path = Path(path)
    files = sorted(path.glob(PATTERN)) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"no results at {path}")
    by_method: dict[str, list[DocumentResult]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for file in files:
        for record in _complete_records(file):  # a torn last line: a run still in progress
            result = DocumentResult.from_dict(record)
            if (result.method, result.doc_id) not in seen:
                seen.add((result.method, result.doc_id))
                by_method[result.method].append(result)
    return dict(by_method)
