"""Run the benchmark: every method on every document, appended to ``results*.jsonl``.

The loop is document-major (all methods on one document, then the next), so that an
interrupted run still holds complete, paired comparisons for the documents it finished.
A rerun with the same configuration resumes after the last finished (method, document).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from siftlm.bench.config import BenchConfig
from siftlm.bench.results import ResultsFile, results_path

if TYPE_CHECKING:
    from siftlm.data import Document


def pick_documents(config: BenchConfig) -> list[Document]:
    """The documents of ``config.split`` the benchmark evaluates (all workers' share): the
    first ``docs_per_domain`` of each domain, in rounds (the first document of every
    domain, then the second of every domain, ...), so that a run stopped part way has
    covered every domain alike."""
    from siftlm.data import load_corpus

    documents = load_corpus(config.split, domains=config.domains)
    if not documents:
        raise ValueError(f"no documents in split {config.split!r} for domains {config.domains}")
    by_domain: dict[str, list[Document]] = defaultdict(list)
    for document in documents:
        by_domain[document.domain].append(document)
    depth = max(len(docs) for docs in by_domain.values())
    if config.docs_per_domain is not None:
        depth = min(depth, config.docs_per_domain)
    return [docs[i] for i in range(depth) for docs in by_domain.values() if i < len(docs)]


def shard(documents: list[Document], rank: int, world_size: int) -> list[Document]:
    """Worker ``rank``'s share: the j-th document of the i-th domain (in order of first
    appearance) goes to worker (i + j) mod ``world_size``, so that every worker covers
    every domain, also when the number of domains is a multiple of ``world_size``."""
    seen: dict[str, int] = defaultdict(int)
    domain_index: dict[str, int] = {}
    mine = []
    for document in documents:
        i = domain_index.setdefault(document.domain, len(domain_index))
        j = seen[document.domain]
        seen[document.domain] += 1
        if (i + j) % world_size == rank:
            mine.append(document)
    return mine


def open_store(store: str | None, tokenizer: str = "models/house-small"):
    """The datastore at ``store``; by default the embedded memory store, built if missing."""
    from siftlm.datastore import Datastore
    from siftlm.datastore.sharded import open_any

    if store is not None:
        return open_any(store)  # a store folder, or a folder of shards (shards.json)
    from siftlm.datastore.cli import default_store_path

    path = default_store_path()
    if (path / "manifest.json").exists():
        return Datastore.open(path)
    print(f"building the embedded memory store at {path} (once)", file=sys.stderr)
    return Datastore.build("minipile", path, tokenizer=tokenizer)


# What a resumed run must share with the saved one besides the configuration's values:
# the model's size and the store's chunks (selected ids index them).
_SAME_ON_RESUME = ("n_parameters", "store_chunks_sha256")


def _chunks_sha256(store) -> str | None:
    from siftlm.datastore.store import Manifest

    manifest = getattr(store, "manifest", None)  # a Datastore's; in-memory stores have none
    return manifest.chunks_sha256 if isinstance(manifest, Manifest) else None


def _write_config(config: BenchConfig, out: Path, extra: dict) -> None:
    path = out / "config.json"
    if path.exists():
        config.check_resumable(path, {key: extra[key] for key in _SAME_ON_RESUME})
        return
    resolved = {
        **config.to_dict(),
        "ttt": {m: config.ttt_config(m).to_dict() for m in config.methods},
        **extra,
    }
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")  # workers may start together
    tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def run_bench(
    config: BenchConfig, *, model=None, tokenizer=None, store=None, documents=None
) -> Path:
    """Evaluate ``config.methods`` on the documents; returns the results folder.

    ``model``/``tokenizer``/``store``/``documents`` may be passed in (tests, notebooks);
    otherwise they come from ``config.model``, ``config.store`` and ``config.split``.
    This worker takes its share of the documents (``shard``).
    """
    from tqdm.auto import tqdm

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if model is None or tokenizer is None:
        from siftlm.models import load_model

        model, tokenizer = load_model(config.model)
    model.eval()
    needs_store = any(m != "base" for m in config.methods)
    if store is None and needs_store:
        store = open_store(config.store)
    _write_config(
        config,
        out,
        {
            "store_path": str(getattr(store, "path", "")),
            "store_chunks_sha256": _chunks_sha256(store),
            "n_parameters": model.num_parameters(),
        },
    )
    results = ResultsFile(results_path(out, config.rank, config.world_size))
    if documents is None:
        documents = pick_documents(config)
    documents = shard(documents, config.rank, config.world_size)
    todo = [
        (document, method)
        for document in documents
        for method in config.methods
        if (method, document.id) not in results
    ]
    if not todo:
        return out
    trainers = make_trainers(config, model, tokenizer, store)
    bar = tqdm(
        total=len(documents) * len(config.methods),
        initial=len(documents) * len(config.methods) - len(todo),
        desc=f"bench {config.model}",
        unit="run",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    for document, method in todo:
        bar.set_postfix_str(f"{method} {document.domain}", refresh=False)
        results.append(evaluate_document(trainers, config, document, method))
        bar.update()
    bar.close()
    return out


def make_trainers(config: BenchConfig, model, tokenizer, store) -> dict:
    """One ``TestTimeTrainer`` per method of ``config``, sharing the model and store."""
    from siftlm.training import TestTimeTrainer

    return {
        method: TestTimeTrainer(model, tokenizer, store, config.ttt_config(method))
        for method in config.methods
    }


def evaluate_document(trainers: dict, config: BenchConfig, document: Document, method: str):
    """``method``'s ``DocumentResult`` on ``document`` (the model is restored after)."""
    return trainers[method].evaluate(
        document.text,
        doc_id=document.id,
        domain=document.domain,
        curve=config.curve_steps(method),
    )
