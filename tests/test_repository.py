"""The committed text files: no merge conflict markers left behind (one reached the README)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
TEXT = (".md", ".py", ".toml", ".cfg", ".txt", ".yaml", ".yml")


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed if name.endswith(TEXT)]


def test_the_marker_pattern_finds_a_conflict():
    conflict = "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> main\n"
    assert len(MARKER.findall(conflict)) == 3
    assert not MARKER.findall("a table\n| --- |\n======== not a marker\n")


def test_no_merge_conflict_markers_in_tracked_text_files():
    files = tracked_text_files()
    assert any(f.name == "README.md" for f in files)
    found = [
        f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in files
        if path.is_file()
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for match in MARKER.finditer(text)
    ]
    assert not found, f"merge conflict markers: {found}"
