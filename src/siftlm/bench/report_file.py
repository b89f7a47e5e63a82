"""``report.md`` remembers how it was made, so that a rerun never loses what it held.

The last line of a report written by ``siftlm report`` is an HTML comment (invisible
when rendered) with the options it was made with and the SHA-256 of everything above
it::

    <!-- siftlm report: {"compare": ["../house-medium-test"], "store": null, "sha256": "..."} -->

A rerun without options takes the recorded ones (so a ``--compare`` column does not
vanish when someone runs ``siftlm report DIR``). Replacing a report is refused, unless
``force``, when the new options differ from the recorded ones, or when the file carries
no valid record (written by hand, by an older siftlm, or edited after it was written):
its content would be lost. Rewriting with the same options (new results) is the normal
case and needs nothing. Compare folders are recorded relative to the report's folder,
so the record holds wherever the command is run from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_MD = "report.md"
_PREFIX = "<!-- siftlm report: "
_SUFFIX = " -->"


class ReportConflictError(ValueError):
    """Writing the report would replace a file whose content would be lost."""


@dataclass(frozen=True)
class ReportOptions:
    """The options a report depends on besides the results: ``compare`` folders
    (absolute) and ``store`` (a folder, or None for the one the run's config names)."""

    compare: tuple[Path, ...] = ()
    store: str | None = None

    def record(self, folder: Path) -> dict[str, Any]:
        return {
            "compare": [os.path.relpath(path, folder.resolve()) for path in self.compare],
            "store": self.store,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> ReportOptions:
        return cls(
            compare=tuple((folder / p).resolve() for p in record.get("compare", [])),
            store=record.get("store"),
        )

    def describe(self) -> str:
        words = [f"--compare {' '.join(map(str, self.compare))}"] if self.compare else []
        words += [f"--store {self.store}"] if self.store is not None else []
        return " ".join(words) or "no options"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_record(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the record, "") of a report written by siftlm and not edited since; else
    (None, why not)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    body, _, last = text.rstrip("\n").rpartition("\n")
    if not (last.startswith(_PREFIX) and last.endswith(_SUFFIX)):
        return (
            None,
            "it carries no record of how it was made (written by hand or by an older siftlm)",
        )
    try:
        record = json.loads(last[len(_PREFIX) : -len(_SUFFIX)])
    except json.JSONDecodeError:
        return None, "its record of how it was made is damaged"
    if not isinstance(record, dict) or record.get("sha256") != _sha256(body + "\n"):
        return None, "it was edited after siftlm wrote it"
    return record, ""


def _store_name(store: Any) -> str | None:
    """A store given as a folder is recorded; an opened one by its folder, if it has one."""
    if store is None or isinstance(store, (str, Path)):
        return None if store is None else str(store)
    path = getattr(store, "path", None)
    return str(path) if path else None


def resolve_options(
    folder: Path, compare: Any, store: Any, force: bool
) -> tuple[ReportOptions, str | None]:
    """The options to write ``folder``'s report with, and a note for the user (or None).

    ``compare``/``store`` None: as recorded in the existing report (else none). Raises
    ``ReportConflictError`` where writing would lose the existing report's content,
    unless ``force``."""
    path = folder / REPORT_MD
    given_store = _store_name(store)
    given = ReportOptions(
        compare=tuple(Path(p).resolve() for p in compare or ()), store=given_store
    )
    if not path.exists():
        return given, None
    record, why = read_record(path)
    if record is None:
        if force:
            return given, f"replacing {path} ({why})"
        raise ReportConflictError(
            f"{path} exists and {why}; writing would lose it: move it away, or pass "
            "--force to replace it"
        )
    recorded = ReportOptions.from_record(record, folder)
    wanted = ReportOptions(
        compare=recorded.compare if compare is None else given.compare,
        store=recorded.store if store is None else given.store,
    )
    if wanted == recorded:
        note = None
        if (compare is None and recorded.compare) or (store is None and recorded.store):
            note = f"with the options {path} was made with: {recorded.describe()}"
        return wanted, note
    if force:
        return wanted, f"replacing {path} (made with {recorded.describe()})"
    raise ReportConflictError(
        f"{path} was made with {recorded.describe()}, not {wanted.describe()}; "
        "rerun with its options (or none: they are reused), or pass --force to replace it"
    )


def write_report(path: Path, markdown: str, options: ReportOptions) -> str:
    """Write ``markdown`` plus its record atomically; returns the file's text."""
    body = markdown if markdown.endswith("\n") else markdown + "\n"
    record = {**options.record(path.parent), "sha256": _sha256(body)}
    text = f"{body}{_PREFIX}{json.dumps(record, ensure_ascii=False)}{_SUFFIX}\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text
