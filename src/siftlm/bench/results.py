"""Results on disk: one JSON line per (method, document), appended as they finish.

An interrupted run leaves at most one partial last line; ``ResultsFile`` drops it and
the run resumes after the last complete result. Each line is flushed and fsync'd before
the next document starts, so a crash loses at most the document in progress.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from siftlm.training import DocumentResult


class ResultsFile:
    """``results.jsonl``: read what is done, append what finishes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: set[tuple[str, str]] = set()
        if self.path.exists():
            self._recover()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{self.path}: line {number} is not valid JSON ({error}); "
                    "the file was altered, not just interrupted"
                ) from error
            self.done.add((record["method"], record["doc_id"]))
        if end < len(data):
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
    """Results by method, in file order (a results folder or its ``results.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    by_method: dict[str, list[DocumentResult]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                result = DocumentResult.from_dict(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line of a run still in progress
            by_method[result.method].append(result)
    return dict(by_method)
