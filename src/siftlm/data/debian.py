"""What the corpus builder needs to know about installed Debian packages."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from functools import cache, lru_cache
from pathlib import Path

DPKG_INFO = Path("/var/lib/dpkg/info")
DOC_ROOT = Path("/usr/share/doc")


class MissingPackageError(RuntimeError):
    """Raised when a source of the corpus is not installed; names the packages."""

    def __init__(self, packages: list[str], domain: str = "") -> None:
        self.packages = packages
        where = f" (needed by domain {domain!r})" if domain else ""
        super().__init__(
            f"missing Debian package(s){where}: {' '.join(packages)}; install them with "
            f"`apt-get update && apt-get install -y {' '.join(packages)}` "
            "(see data/SOURCES.md for the full list)"
        )


@lru_cache(maxsize=1)
def installed_versions() -> dict[str, str]:
    """package name (without architecture) -> installed version."""
    try:
        output = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(
            f"dpkg-query failed ({error}); the corpus builder needs Debian"
        ) from error
    versions = {}
    for line in output.splitlines():
        name, version, status = line.split("\t")
        if status.startswith("ii"):
            versions[name] = version
    return versions


def require(packages: list[str], domain: str = "") -> None:
    """Raise MissingPackageError naming every package of ``packages`` not installed."""
    versions = installed_versions()
    missing = [package for package in packages if package not in versions]
    if missing:
        raise MissingPackageError(missing, domain)


def source_of(package: str) -> str:
    """``"package version"``, what a Document records as its source."""
    return f"{package} {installed_versions()[package]}"


@cache
def package_files(package: str) -> tuple[str, ...]:
    """Paths installed by ``package`` (from dpkg's file lists), sorted."""
    candidates = [DPKG_INFO / f"{package}.list", *sorted(DPKG_INFO.glob(f"{package}:*.list"))]
    for path in candidates:
        if path.is_file():
            return tuple(sorted(set(path.read_text(encoding="utf-8").splitlines())))
    return ()


@lru_cache(maxsize=1)
def file_owners() -> dict[str, str]:
    """path -> owning package, for every file dpkg knows (first owner in name order)."""
    owners: dict[str, str] = {}
    for list_path in sorted(DPKG_INFO.glob("*.list")):
        package = list_path.name[: -len(".list")].split(":")[0]
        for line in list_path.read_text(encoding="utf-8", errors="replace").splitlines():
            owners.setdefault(line, package)
    return owners


# ---------------------------------------------------------------------------------------
# Licenses from Debian copyright files (machine-readable format, DEP-5)


def _paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            paragraphs.append(fields)
    return paragraphs


@cache
def _copyright_paragraphs(package: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    """((file patterns, license short name), ...) of a DEP-5 copyright file."""
    path = DOC_ROOT / package / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    if not text.lower().startswith("format:"):
        return ()
    result = []
    for fields in _paragraphs(text):
        if "files" in fields and "license" in fields:
            patterns = tuple(fields["files"].split())
            short = fields["license"].split("\n")[0].strip()
            if short:
                result.append((patterns, short))
    return tuple(result)


def package_license(package: str, path_in_source: str | None = None) -> str:
    """License of ``package`` (or of one of its files) from its Debian copyright file.

    For a machine-readable copyright file, the last ``Files`` paragraph whose pattern
    matches ``path_in_source`` (or its tail) wins, as the format specifies; without a
    path, the ``Files: *`` paragraph. Otherwise a pointer to the copyright file.
    """
    paragraphs = _copyright_paragraphs(package)
    found = None
    for patterns, short in paragraphs:
        if "*" in patterns:
            found = short
        elif path_in_source is not None:
            for pattern in patterns:
                if fnmatch.fnmatchcase(path_in_source, pattern) or fnmatch.fnmatchcase(
                    path_in_source, "*/" + pattern
                ):
                    found = short
    if found is None and paragraphs:
        found = paragraphs[0][1]
    return found or _license_families(package)


# Free-text copyright files: name the license families their text mentions.
_FAMILIES = (
    ("LGPL", r"GNU (?:Lesser|Library) General Public License|/common-licenses/LGPL"),
    ("GPL", r"GNU General Public License|/common-licenses/GPL"),
    ("Apache-2.0", r"Apache License|/common-licenses/Apache-2\.0"),
    ("Artistic", r"Artistic License|/common-licenses/Artistic"),
    ("MPL", r"Mozilla Public License|/common-licenses/MPL"),
    ("MIT", r"Permission is hereby granted, free of charge"),
    ("BSD", r"Redistribution and use in source and binary forms"),
    ("public-domain", r"[Pp]ublic [Dd]omain"),
)


@cache
def _license_families(package: str) -> str:
    pointer = f"see /usr/share/doc/{package}/copyright"
    try:
        text = (DOC_ROOT / package / "copyright").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return pointer
    names = [name for name, pattern in _FAMILIES if re.search(pattern, text)]
    return f"{' and '.join(names)} ({pointer})" if names else pointer
