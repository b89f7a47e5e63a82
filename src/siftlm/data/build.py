"""Build the embedded corpus: sources -> documents -> budget -> splits -> Parquet files.

    python -m siftlm.data.build            # or: siftlm corpus build
    siftlm corpus check --domains fortunes # rebuild some domains, compare with MANIFEST.json

Determinism: sources are read in sorted order, every random choice is seeded from
(seed, domain, key) via SHA-256 (never Python's salted ``hash``), and documents carry
stable ids ``<domain>/<unit key>`` (``#<part>`` appended when a unit is cut into parts).
The same installed package versions give byte-identical texts and the same splits.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from siftlm.data.corpus import COLUMNS, DOMAINS, SPLITS, Document, default_corpus_dir, text_key
from siftlm.data.sources import SOURCES, BuildContext, Unit
from siftlm.data.text import split_text

MAX_DOC_CHARS = 20_000  # longer units are cut into parts of at most this length
MIN_DOC_CHARS = 200  # shorter documents are dropped
EVAL_MIN_CHARS = 400  # validation/test documents are between these lengths
EVAL_MAX_CHARS = 8_000
EVAL_DOCS_PER_DOMAIN = 25  # for validation, and as many for test

# Megabytes of text kept per domain (units are sampled, seeded, when a source has more).
BUDGET_MB: dict[str, float] = {
    "changelogs": 3.0,
    "code_c": 4.0,
    "code_python": 5.0,
    "debian_docs": 2.5,
    "dictionary": 4.0,
    "fortunes": 2.0,
    "glossary": 3.0,
    "legal": 4.0,
    "man_pages": 4.0,
    "math": 4.0,
    "python_docs": 4.0,
    "shakespeare": 4.0,
    "tech_docs": 4.0,
    "wordnet": 2.5,
}

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "siftlm" / "corpus"
MANIFEST = "MANIFEST.json"


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(str(part) for part in parts).encode("utf-8")).hexdigest()


def _seeded_order(keys: Sequence[str], seed: int, salt: str) -> list[str]:
    """``keys`` in a pseudo-random order fixed by (seed, salt, key)."""
    return sorted(keys, key=lambda key: _digest(seed, salt, key))


def within_budget(units: list[Unit], budget_chars: int, seed: int, domain: str) -> list[Unit]:
    """A seeded sample of whole units totalling about ``budget_chars``, in key order."""
    if sum(len(unit.text) for unit in units) <= budget_chars:
        return units
    by_key = {unit.key: unit for unit in units}
    kept, total = [], 0
    for key in _seeded_order(list(by_key), seed, f"budget/{domain}"):
        if total >= budget_chars:
            break
        kept.append(by_key[key])
        total += len(by_key[key].text)
    return sorted(kept, key=lambda unit: unit.key)


def units_to_documents(domain: str, units: list[Unit]) -> list[Document]:
    """Cut units into documents of at most MAX_DOC_CHARS, drop tiny ones."""
    documents = []
    for unit in units:
        parts = split_text(unit.text, unit.max_chars or MAX_DOC_CHARS, MIN_DOC_CHARS)
        for index, part in enumerate(parts):
            if len(part) < MIN_DOC_CHARS:
                continue
            suffix = f"#{index}" if len(parts) > 1 else ""
            documents.append(Document(f"{domain}/{unit.key}{suffix}", domain, unit.source,
                                      unit.license, part))  # fmt: skip
    return documents


def assign_splits(documents: list[Document], seed: int) -> dict[str, str]:
    """document id -> split.

    Per domain: EVAL_DOCS_PER_DOMAIN validation and as many test documents, drawn
    (seeded) among documents of EVAL_MIN_CHARS..EVAL_MAX_CHARS characters whose
    normalized text occurs exactly once in the whole corpus (so no exact copy can be
    in memory or pretrain); every other document goes to pretrain or memory, alternately
    in a seeded order (50/50).
    """
    copies = Counter(text_key(document.text) for document in documents)
    by_domain: dict[str, list[Document]] = defaultdict(list)
    for document in documents:
        by_domain[document.domain].append(document)
    assignment: dict[str, str] = {}
    for domain in sorted(by_domain):
        members = by_domain[domain]
        eligible = [
            document.id
            for document in members
            if EVAL_MIN_CHARS <= len(document.text) <= EVAL_MAX_CHARS
            and copies[text_key(document.text)] == 1
        ]
        chosen = _seeded_order(eligible, seed, f"eval/{domain}")[: 2 * EVAL_DOCS_PER_DOMAIN]
        for index, document_id in enumerate(chosen):
            assignment[document_id] = "validation" if index % 2 == 0 else "test"
        rest = [document.id for document in members if document.id not in assignment]
        for index, document_id in enumerate(_seeded_order(rest, seed, f"train/{domain}")):
            assignment[document_id] = "pretrain" if index % 2 == 0 else "memory"
    return assignment


def domain_hash(documents: list[Document], assignment: dict[str, str]) -> str:
    """One SHA-256 over a domain's ids, metadata, texts and splits (for rebuild checks)."""
    digest = hashlib.sha256()
    for document in sorted(documents, key=lambda document: document.id):
        for value in (document.id, document.source, document.license, document.text,
                      assignment[document.id]):  # fmt: skip
            digest.update(value.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class BuildResult:
    documents: list[Document]
    assignment: dict[str, str]
    domain_hashes: dict[str, str]


def build_domains(
    domains: Sequence[str],
    context: BuildContext,
) -> dict[str, list[Document]]:
    """Documents of each domain (budgeted), before the split assignment."""
    result = {}
    for domain in domains:
        if domain not in SOURCES:
            raise ValueError(f"unknown domain {domain!r}; known domains: {', '.join(DOMAINS)}")
        started = time.perf_counter()
        units = SOURCES[domain](context)
        keys = [unit.key for unit in units]
        if len(set(keys)) != len(keys):
            duplicated = sorted(key for key, count in Counter(keys).items() if count > 1)
            raise RuntimeError(f"domain {domain}: duplicate unit keys {duplicated[:5]}")
        budget = int(BUDGET_MB[domain] * 1_000_000)
        units = within_budget(units, budget, context.seed, domain)
        documents = units_to_documents(domain, units)
        megabytes = sum(len(document.text.encode("utf-8")) for document in documents) / 1e6
        context.log(f"{domain:12s} {len(documents):6d} documents {megabytes:6.2f} MB "
                    f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
        result[domain] = documents
    return result


def build(context: BuildContext, domains: Sequence[str] = DOMAINS) -> BuildResult:
    """Build the given domains and assign splits (over the documents of these domains)."""
    per_domain = build_domains(domains, context)
    documents = [document for domain in domains for document in per_domain[domain]]
    assignment = assign_splits(documents, context.seed)
    hashes = {domain: domain_hash(per_domain[domain], assignment) for domain in domains}
    return BuildResult(documents, assignment, hashes)


# ---------------------------------------------------------------------------------------
# Writing


def write_corpus(result: BuildResult, out_dir: Path, seed: int) -> None:
    """The four split files, MANIFEST.json and STATS.md, written aside then renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows = sorted(
            (d for d in result.documents if result.assignment[d.id] == split),
            key=lambda d: (d.domain, d.id),
        )
        table = pa.table({name: [getattr(d, name) for d in rows] for name in COLUMNS})
        temporary = out_dir / f".{split}.parquet.tmp"
        pq.write_table(table, temporary, compression="zstd", compression_level=19,
                       row_group_size=2048, use_dictionary=["domain", "source", "license"])  # fmt: skip
        temporary.replace(out_dir / f"{split}.parquet")
    manifest = {
        "seed": seed,
        "max_doc_chars": MAX_DOC_CHARS,
        "min_doc_chars": MIN_DOC_CHARS,
        "eval_chars": [EVAL_MIN_CHARS, EVAL_MAX_CHARS],
        "eval_docs_per_domain": EVAL_DOCS_PER_DOMAIN,
        "budget_mb": BUDGET_MB,
        "domain_sha256": result.domain_hashes,
        "files_sha256": {
            f"{split}.parquet": hashlib.sha256(
                (out_dir / f"{split}.parquet").read_bytes()
            ).hexdigest()
            for split in SPLITS
        },
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out_dir / "STATS.md").write_text(stats_markdown(result, out_dir))


def stats_markdown(result: BuildResult, out_dir: Path) -> str:
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for document in result.documents:
        split = result.assignment[document.id]
        counts[document.domain, split] += 1
        sizes[document.domain, split] += len(document.text.encode("utf-8"))
    domains = sorted({document.domain for document in result.documents})
    lines = [
        "# minipile: documents and megabytes (UTF-8 text, 10^6 bytes) per split and domain",
        "",
        "Generated by `siftlm corpus build`; do not edit.",
        "",
        "| domain | " + " | ".join(SPLITS) + " | total |",
        "| --- | " + " | ".join("---:" for _ in SPLITS) + " | ---: |",
    ]

    def cell(domain_list: list[str], split_list: Sequence[str]) -> str:
        count = sum(counts[d, s] for d in domain_list for s in split_list)
        size = sum(sizes[d, s] for d in domain_list for s in split_list)
        return f"{count} / {size / 1e6:.2f}"

    for domain in [*domains, None]:
        chosen = domains if domain is None else [domain]
        name = "**all**" if domain is None else domain
        row = [cell(chosen, [split]) for split in SPLITS] + [cell(chosen, SPLITS)]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: documents / MB. Committed file sizes (zstd Parquet):")
    lines.append("")
    for split in SPLITS:
        path = out_dir / f"{split}.parquet"
        lines.append(f"- `{path.name}`: {path.stat().st_size / 1e6:.2f} MB")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Checking a rebuild against the committed corpus


def check_rebuild(context: BuildContext, domains: Sequence[str], corpus_dir: Path | None = None
                  ) -> dict[str, bool]:  # fmt: skip
    """Rebuild ``domains`` and compare them with the committed corpus.

    The domain's documents must be identical (ids, metadata, texts) to the committed ones,
    and so must the splits they were assigned to. The split assignment of a domain depends
    only on that domain, but the exact-copy rule looks across domains, so the committed
    texts of all other domains are loaded for it.
    """
    from siftlm.data.corpus import load_corpus

    corpus_dir = corpus_dir or default_corpus_dir()
    manifest = json.loads((corpus_dir / MANIFEST).read_text())
    committed = {split: load_corpus(split, corpus_dir=corpus_dir) for split in SPLITS}
    others = [d for split in SPLITS for d in committed[split] if d.domain not in domains]
    rebuilt = build_domains(domains, context)
    documents = others + [d for domain in domains for d in rebuilt[domain]]
    assignment = assign_splits(documents, context.seed)
    return {
        domain: domain_hash(rebuilt[domain], assignment) == manifest["domain_sha256"].get(domain)
        for domain in domains
    }


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m siftlm.data.build")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    context = BuildContext(args.cache_dir, args.seed, args.jobs, log)
    result = build(context)
    write_corpus(result, args.out or default_corpus_dir(), args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
