"""The corpus builder: text helpers, split assignment, missing packages, determinism."""

from __future__ import annotations

import gzip
import json

import pytest

from siftlm.data import Document, default_corpus_dir, text_key
from siftlm.data import debian as debian_module
from siftlm.data.build import (
    EVAL_DOCS_PER_DOMAIN,
    MANIFEST,
    assign_splits,
    build_domains,
    check_rebuild,
    domain_hash,
    units_to_documents,
    within_budget,
)
from siftlm.data.sources import BuildContext, Unit
from siftlm.data.text import group_entries, html_to_text, read_dictd, split_text


def test_split_text_respects_the_limit_and_cuts_at_paragraphs():
    paragraphs = [f"paragraph {i} " + "word " * (20 + i % 7) for i in range(200)]
    text = "\n\n".join(paragraphs)
    parts = split_text(text, max_chars=2000, min_chars=200)
    assert all(len(part) <= 2000 for part in parts)
    assert len(parts) >= len(text) // 2000
    # nothing lost: the parts are the paragraphs, in order
    assert [p.strip() for p in "\n\n".join(parts).split("\n\n")] == [p.strip() for p in paragraphs]
    assert split_text("short", 2000) == ["short"]
    assert all(len(part) <= 100 for part in split_text("x" * 1000, 100))  # no boundary at all


def test_group_entries():
    groups = group_entries(["a" * 50] * 10, target_chars=120, max_chars=200)
    assert groups == ["\n\n".join(["a" * 50] * 3)] * 3 + ["a" * 50]


def test_html_to_text_drops_navigation_and_keeps_blocks():
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<div class='navheader'>Prev Next</div><h1>Title</h1><p>Some   text\nhere.</p>"
        "<ul><li><p>one</p></li><li>two</li></ul><pre>  code\n    indented</pre>"
        "<script>var x;</script></body></html>"
    )
    text = html_to_text(html)
    assert "Prev" not in text and "var x" not in text and "p{}" not in text
    assert "Title\n\nSome text here." in text
    assert "* one" in text and "* two" in text
    assert "    indented" in text


def _b64(number: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    digits = ""
    while True:
        digits = alphabet[number % 64] + digits
        number //= 64
        if number == 0:
            return digits


def test_read_dictd(tmp_path):
    entries = [
        ("00-database-info", "meta"),
        ("apple", "apple\n  A fruit."),
        ("bee", "bee\n  An insect."),
    ]
    data, index = b"", []
    for word, definition in entries:
        encoded = definition.encode()
        index.append(f"{word}\t{_b64(len(data))}\t{_b64(len(encoded))}")
        data += encoded
    apple = index[1].split("\t")
    index.append("\t".join(["Apple", apple[1], apple[2]]))  # an alias: the same entry
    (tmp_path / "toy.index").write_text("\n".join(index) + "\n")
    (tmp_path / "toy.dict.dz").write_bytes(gzip.compress(data))
    assert list(read_dictd(tmp_path / "toy")) == [
        ("apple", "apple\n  A fruit."),
        ("bee", "bee\n  An insect."),
    ]


def _toy_documents(domains=("alpha", "beta"), per_domain=120):
    documents = []
    for domain in domains:
        for index in range(per_domain):
            text = f"{domain} document {index} " + "lorem ipsum " * (40 + index % 30)
            documents.append(Document(f"{domain}/{index:04d}", domain, "toy 1", "MIT", text))
        # exact copies (up to whitespace) of one text: never evaluation documents
        copy = "the same license text " * 40
        documents.append(Document(f"{domain}/copy-a", domain, "toy 1", "MIT", copy))
        documents.append(
            Document(f"{domain}/copy-b", domain, "toy 1", "MIT", copy.replace(" ", "  "))
        )
    return documents


def test_assign_splits_rules():
    documents = _toy_documents()
    assignment = assign_splits(documents, seed=0)
    assert assignment == assign_splits(list(reversed(documents)), seed=0)  # order-free
    assert assignment != assign_splits(documents, seed=1)
    for domain in ("alpha", "beta"):
        splits = [assignment[d.id] for d in documents if d.domain == domain]
        assert splits.count("validation") == EVAL_DOCS_PER_DOMAIN
        assert splits.count("test") == EVAL_DOCS_PER_DOMAIN
        assert abs(splits.count("pretrain") - splits.count("memory")) <= 1
        assert assignment[f"{domain}/copy-a"] in ("pretrain", "memory")
        assert assignment[f"{domain}/copy-b"] in ("pretrain", "memory")
    training = {text_key(d.text) for d in documents if assignment[d.id] in ("pretrain", "memory")}
    assert not any(
        text_key(d.text) in training
        for d in documents
        if assignment[d.id] in ("validation", "test")
    )


def test_units_to_documents_and_budget():
    units = [Unit(f"k{i}", "toy 1", "MIT", "x" * (100 + 300 * i)) for i in range(10)]
    documents = units_to_documents("toy", units)
    assert [d.id for d in documents] == [f"toy/k{i}" for i in range(1, 10)]  # k0 is tiny
    long = units_to_documents("toy", [Unit("big", "toy 1", "MIT", "word " * 10_000)])
    assert [d.id for d in long] == ["toy/big#0", "toy/big#1", "toy/big#2"]
    kept = within_budget(units, 5000, seed=0, domain="toy")
    assert kept == within_budget(list(reversed(units)), 5000, seed=0, domain="toy")
    assert 5000 <= sum(len(u.text) for u in kept) < 5000 + 3000
    assert [u.key for u in kept] == sorted(u.key for u in kept)


def test_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(debian_module, "installed_versions", lambda: {"present": "1.0"})
    with pytest.raises(debian_module.MissingPackageError, match="dict-nothing.*apt-get install"):
        debian_module.require(["present", "dict-nothing"], "glossary")


def _require_installed(*packages):
    try:
        debian_module.require(list(packages))
    except (debian_module.MissingPackageError, RuntimeError) as error:
        pytest.skip(f"needs the corpus' Debian packages: {error}")


@pytest.mark.slow
def test_small_domain_rebuilds_identically(tmp_path):
    _require_installed("fortunes", "dict-devil")
    context = BuildContext(tmp_path, seed=0, jobs=1, log=lambda line: None)
    first = build_domains(["fortunes"], context)["fortunes"]
    second = build_domains(["fortunes"], context)["fortunes"]
    assert first == second
    assignment = assign_splits(first, seed=0)
    assert domain_hash(first, assignment) == domain_hash(second, assign_splits(second, seed=0))


@pytest.mark.slow
def test_rebuild_matches_the_committed_corpus(tmp_path):
    _require_installed("fortunes", "dict-devil", "dict-foldoc", "dict-jargon")
    manifest = json.loads((default_corpus_dir() / MANIFEST).read_text())
    sources = {
        d.source
        for d in build_domains(["fortunes"], BuildContext(tmp_path, log=lambda _: None))["fortunes"]
    }
    from siftlm.data import load_corpus

    committed_sources = {d.source for d in load_corpus("memory", domains=["fortunes"])}
    if sources != committed_sources:
        pytest.skip(
            f"installed package versions {sources} differ from the build's {committed_sources}"
        )
    same = check_rebuild(BuildContext(tmp_path, log=lambda line: None), ["fortunes", "glossary"])
    assert same == {"fortunes": True, "glossary": True}
    assert set(manifest["domain_sha256"]) >= {"fortunes", "glossary"}


def test_package_license_from_copyright_files(tmp_path, monkeypatch):
    monkeypatch.setattr(debian_module, "DOC_ROOT", tmp_path)
    debian_module._copyright_paragraphs.cache_clear()
    debian_module._license_families.cache_clear()
    (tmp_path / "dep5").mkdir()
    (tmp_path / "dep5" / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
        "Files: man3/*\nCopyright: other\nLicense: BSD-3-clause\n text of the license\n"
    )
    (tmp_path / "free").mkdir()
    (tmp_path / "free" / "copyright").write_text(
        "Permission is hereby granted, free of charge, to any person ...\n"
    )
    try:
        assert debian_module.package_license("dep5") == "GPL-2+"
        assert debian_module.package_license("dep5", "man3/printf.3") == "BSD-3-clause"
        assert debian_module.package_license("dep5", "man1/ls.1") == "GPL-2+"
        assert debian_module.package_license("free").startswith("MIT (see ")
        assert debian_module.package_license("absent") == "see /usr/share/doc/absent/copyright"
    finally:
        debian_module._copyright_paragraphs.cache_clear()
        debian_module._license_families.cache_clear()


def test_plays_are_cut_at_scenes():
    from siftlm.data.sources import _split_scenes

    play = (
        "TITLE\n\nPersons.\n\nACT I.\n\nScene I. A room.\n\n"
        + "Line.\n" * 50
        + ("\nScene II. Elsewhere.\n\n" + "Other line.\n" * 50)
    )
    scenes = _split_scenes(play)
    assert len(scenes) == 2
    assert scenes[0].startswith("TITLE") and "Scene I. A room." in scenes[0]
    assert scenes[1].startswith("Scene II. Elsewhere.")
    assert _split_scenes("A poem\nwith lines") == ["A poem\nwith lines"]
