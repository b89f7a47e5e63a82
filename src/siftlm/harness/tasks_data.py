"""Datasets and the rolling metric of the shipped harness tasks (``tasks/*.yaml``).

The harness calls a task's ``custom_dataset`` with the task's ``dataset_kwargs`` and its
metadata (which includes the ``--model_args``), so the loaders take ``**_``. Nothing is
downloaded: the minipile documents come from the committed corpus, the multiple-choice
questions from ``tasks/wordnet_define.jsonl``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def minipile_documents(corpus_split: str = "test", corpus_domain: str | None = None, **_: Any):
    """{"test": Dataset} of one domain's documents (fields id, domain, source, text)."""
    import datasets

    from siftlm.data import load_corpus

    documents = load_corpus(corpus_split, domains=[corpus_domain] if corpus_domain else None)
    rows = [{"id": d.id, "domain": d.domain, "source": d.source, "text": d.text} for d in documents]
    return {"test": datasets.Dataset.from_list(rows)}


def wordnet_define(data_file: str = "wordnet_define.jsonl", **_: Any):
    """{"test": Dataset} of the questions in ``data_file`` (relative to ``tasks/``)."""
    import datasets

    path = Path(data_file)
    path = path if path.is_absolute() else TASKS_DIR / path
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {"test": datasets.Dataset.from_list(rows)}


def process_rolling(doc: dict, results: list) -> dict[str, tuple[float, int]]:
    """The harness's rolling metrics of one document, over the text that was scored.

    A response of the siftlm backend carries its scored bytes (``n_bytes``): all of the
    text, or only its second half under ``query="first-half"``, whose last ``n_bytes``
    bytes are then the scored text. Other backends return a plain float: the whole text.
    """
    (loglikelihood,) = results
    text = doc["text"]
    n_bytes = getattr(loglikelihood, "n_bytes", None)
    if n_bytes is not None and n_bytes != len(text.encode("utf-8")):
        text = text.encode("utf-8")[-n_bytes:].decode("utf-8")
    n_bytes = len(text.encode("utf-8"))
    n_words = len(re.split(r"\s+", text))
    value = float(loglikelihood)
    return {
        "word_perplexity": (value, n_words),
        "byte_perplexity": (value, n_bytes),
        "bits_per_byte": (value, n_bytes),
    }
