"""Run the benchmark: every method on every document, appended to ``results*.jsonl``.

The loop is document-major (all methods on one document, then the next), so that an
interrupted run still holds complete, paired comparisons for the documents it finished.
A rerun with the same configuration resumes after the last finished (method, document).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from siftlm.bench.ablation import ablated_memory
from siftlm.bench.config import BenchConfig
from siftlm.bench.results import ResultsFile, results_path
from siftlm.defaults import open_store  # noqa: F401 - its old home; re-exported

if TYPE_CHECKING:
    from siftlm.data import Document


def pick_documents(config: BenchConfig) -> list[Document]:
    """The documents of ``config.split`` the benchmark evaluates (all workers' share): the
    first ``docs_per_domain`` of each domain after its first ``skip_docs``, in rounds (the first document of every
    domain, then the second of every domain, ...), so that a run stopped part way has
    covered every domain alike."""
    from siftlm.data import load_corpus

    documents = load_corpus(config.split, domains=config.domains)
    if not documents:
        raise ValueError(f"no documents in split {config.split!r} for domains {config.domains}")
    by_domain: dict[str, list[Document]] = defaultdict(list)
    for document in documents:
        by_domain[document.domain].append(document)
    skip = config.skip_docs
    depth = max(len(docs) for docs in by_domain.values()) - skip
    if config.docs_per_domain is not None:
        depth = min(depth, config.docs_per_domain)
    picked = [
        docs[i] for i in range(skip, skip + depth) for docs in by_domain.values() if i < len(docs)
    ]
    if not picked:
        raise ValueError(f"skip_docs={skip} skips every document of split {config.split!r}")
    return picked


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


# What a resumed run must share with the saved one besides the configuration's values:
# the model's size and the store's chunks (selected ids index them).
_SAME_ON_RESUME = ("n_parameters", "store_chunks_sha256")


def _chunks_sha256(store) -> str | None:
    from siftlm.datastore.store import Manifest

    manifest = getattr(store, "manifest", None)  # a Datastore's; in-memory stores have none
    return manifest.chunks_sha256 if isinstance(manifest, Manifest) else None


def _resolved_config(config: BenchConfig, extra: dict) -> dict:
    return {
        **config.to_dict(),
        "ttt": {m: config.ttt_config(m).to_dict() for m in config.methods},
        **extra,
    }


def _write_config(config: BenchConfig, out: Path, extra: dict) -> None:
    """Check the folder's config.json against ``config`` (a resumed run) or write it.

    Called under the folder's lock, after everything else was validated, so that a
    refused run writes nothing and two runs cannot both pass the check."""
    path = out / "config.json"
    if path.exists():
        config.check_resumable(path, {key: extra[key] for key in _SAME_ON_RESUME})
        return
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_resolved_config(config, extra), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextmanager
def locked(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (``fcntl.flock``; released when the
    process ends, also by a crash); if another process holds it, ValueError."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(
                f"{what} is in use by {holder}; wait for it to finish or pass another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(config: BenchConfig, model, tokenizer, store, documents):
    """Load and validate everything a run needs, writing nothing: the model, the store,
    this worker's documents and one trainer per method (which checks k, the tokenizer
    and the embedder against the store)."""
    if model is None or tokenizer is None:
        from siftlm.models import load_model

        model, tokenizer = load_model(config.model)
    model.eval()
    if store is None and any(m != "base" for m in config.methods):
        store = open_store(config.store)
    if documents is None:
        documents = pick_documents(config)
    store = ablated_memory(config, store, documents, tokenizer)  # memory_fraction, duplicates
    trainers = make_trainers(config, model, tokenizer, store)
    extra = {
        "store_path": str(getattr(store, "path", "")),
        "store_chunks_sha256": _chunks_sha256(store),
        "n_parameters": model.num_parameters(),
    }
    return trainers, shard(documents, config.rank, config.world_size), extra


@dataclass(frozen=True)
class PreparedRun:
    """A run of ``config`` with everything loaded and validated, nothing written yet:
    one trainer per method (``trainers``), this worker's share of the documents
    (``documents``) and what config.json records besides ``config`` (``extra``)."""

    config: BenchConfig
    trainers: dict
    documents: list
    extra: dict

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @contextmanager
    def claim(self) -> Iterator[ResultsFile]:
        """Hold this worker's results file while the block runs (another process on
        it: ValueError, before anything is written), write the folder's config.json or
        check it against the saved one of a resumed run (under the folder's lock, so
        that two runs cannot both pass the check), and yield the results file."""
        out, config = self.out, self.config
        path = results_path(out, config.rank, config.world_size)
        with locked(out / f".{path.name}.lock", f"results folder {out} (worker {path.name})"):
            with locked(out / ".config.lock", f"results folder {out}"):
                _write_config(config, out, self.extra)
            yield ResultsFile(path)


def prepare_run(
    config: BenchConfig, *, model=None, tokenizer=None, store=None, documents=None
) -> PreparedRun:
    """Load and validate what ``config``'s run needs, writing nothing (a refused run
    leaves no file); ``model``/``tokenizer``/``store``/``documents`` as in ``run_bench``.
    Run it inside ``PreparedRun.claim``."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a results folder")
    trainers, documents, extra = _prepare(config, model, tokenizer, store, documents)
    return PreparedRun(config, trainers, documents, extra)


def run_bench(
    config: BenchConfig, *, model=None, tokenizer=None, store=None, documents=None
) -> Path:
    """Evaluate ``config.methods`` on the documents; returns the results folder.

    ``model``/``tokenizer``/``store``/``documents`` may be passed in (tests, notebooks);
    otherwise they come from ``config.model``, ``config.store`` and ``config.split``.
    This worker takes its share of the documents (``shard``). Nothing is written before
    everything is validated; a worker's results file is locked while it runs (another
    process on the same worker's share is refused, other ranks may run alongside).
    """
    run = prepare_run(config, model=model, tokenizer=tokenizer, store=store, documents=documents)
    with run.claim() as results:
        _run_documents(config, run.trainers, run.documents, results)
    return run.out


def _run_documents(config: BenchConfig, trainers: dict, documents: list, results) -> None:
    """Every (document, method) not yet in ``results``, document-major, with a bar."""
    from tqdm.auto import tqdm

    todo = [
        (document, method)
        for document in documents
        for method in config.methods
        if (method, document.id) not in results
    ]
    if not todo:
        return
    total = len(documents) * len(config.methods)
    bar = tqdm(
        total=total,
        initial=total - len(todo),
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
