"""Text helpers of the corpus builder: HTML to text, dictd files, splitting long texts."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

# ---------------------------------------------------------------------------------------
# Cleaning and splitting


def clean(text: str) -> str:
    """Unix newlines, no trailing spaces, at most two blank lines in a row, stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip()


def _cut_points(text: str, separator: str) -> list[int]:
    """Positions right after each occurrence of ``separator``."""
    return [match.end() for match in re.finditer(re.escape(separator), text)]


def split_text(text: str, max_chars: int, min_chars: int = 0) -> list[str]:
    """Cut ``text`` into parts of at most ``max_chars`` characters, at natural boundaries.

    Parts are about equally long: with n = ceil(len / max_chars) parts, each cut is made
    at the paragraph break (else line break, else space, else anywhere) nearest to the
    ideal position k * len / n that keeps every part within ``max_chars``. A final part
    shorter than ``min_chars`` is merged into the previous one when that still fits.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    parts: list[str] = []
    start = 0
    while len(text) - start > max_chars:
        remaining = len(text) - start
        count = -(-remaining // max_chars)
        ideal = start + remaining // count
        limit = start + max_chars
        window = text[start:limit]
        cut = None
        for separator in ("\n\n", "\n", " "):
            points = [start + point for point in _cut_points(window, separator)]
            points = [point for point in points if point - start >= max_chars // 4]
            if points:
                cut = min(points, key=lambda point: abs(point - ideal))
                break
        if cut is None:
            cut = ideal
        part = text[start:cut].strip()
        if part:
            parts.append(part)
        start = cut
    tail = text[start:].strip()
    if tail:
        if parts and len(tail) < min_chars and len(parts[-1]) + len(tail) + 2 <= max_chars:
            parts[-1] = parts[-1] + "\n\n" + tail
        else:
            parts.append(tail)
    return parts


def group_entries(entries: list[str], target_chars: int, max_chars: int) -> list[str]:
    """Join consecutive short entries (dictionary entries, fortunes, ...) into groups.

    A group is closed as soon as it reaches ``target_chars``; an entry that would push a
    non-empty group past ``max_chars`` starts a new group.
    """
    groups: list[str] = []
    current: list[str] = []
    size = 0
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        if current and size + len(entry) + 2 > max_chars:
            groups.append("\n\n".join(current))
            current, size = [], 0
        current.append(entry)
        size += len(entry) + 2
        if size >= target_chars:
            groups.append("\n\n".join(current))
            current, size = [], 0
    if current:
        groups.append("\n\n".join(current))
    return groups


# ---------------------------------------------------------------------------------------
# HTML to text

_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "ol", "p", "pre", "section", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
_SKIP_TAGS = {"head", "script", "style", "noscript", "template", "svg", "nav"}
_SKIP_CLASSES = {"navheader", "navfooter", "menu", "nosearch", "search", "fancy_toc"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
              "param", "source", "track", "wbr"}  # fmt: skip


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.skip_stack: list[str] = []  # open tags whose content is skipped
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag in ("br", "hr") and not self.skip_stack:
                self.pieces.append("\n")
            return
        classes = set((dict(attrs).get("class") or "").split())
        if self.skip_stack or tag in _SKIP_TAGS or classes & _SKIP_CLASSES:
            self.skip_stack.append(tag)
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag in _BLOCK_TAGS:
            self.pieces.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4") else "\n")
        if tag == "li":
            self.pieces.append("* ")

    def handle_endtag(self, tag: str) -> None:
        if self.skip_stack:
            # tolerate sloppy HTML: pop up to the matching tag if it is open
            if tag in self.skip_stack:
                while self.skip_stack and self.skip_stack.pop() != tag:
                    pass
            return
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in _BLOCK_TAGS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_stack:
            return
        if self.pre_depth:
            self.pieces.append(data)
        else:
            self.pieces.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable text of an HTML page: block structure kept, navigation dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.pieces)
    lines = [line.strip() if not line.startswith("    ") else line.rstrip()
             for line in text.split("\n")]  # fmt: skip
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return clean(re.sub(r"^\* *\n+(?=\S)", "* ", text, flags=re.MULTILINE))  # "<li><p>"


# ---------------------------------------------------------------------------------------
# dictd databases (.index + .dict.dz)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_number(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _B64.index(char)
    return value


def read_dictd(stem: Path) -> Iterator[tuple[str, str]]:
    """(headword, definition) of a dictd database, in file order, each entry once.

    ``stem`` is e.g. ``/usr/share/dictd/gcide``; the ``00-database-*`` entries (metadata)
    are skipped.
    """
    index_path = stem.with_name(stem.name + ".index")
    dict_path = stem.with_name(stem.name + ".dict.dz")
    data = gzip.decompress(dict_path.read_bytes())  # dictzip is gzip-compatible
    entries: dict[tuple[int, int], str] = {}
    for line in index_path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        headword = fields[0]
        if headword.startswith("00-database") or headword.startswith("00database"):
            continue
        key = (_b64_number(fields[1]), _b64_number(fields[2]))
        entries.setdefault(key, headword)
    for (offset, length), headword in sorted(entries.items()):
        definition = data[offset : offset + length].decode("utf-8", errors="replace")
        yield headword, clean(definition)
