"""One home for the project's paths and defaults, and the two helpers built on them.

- Paths: the project root (a checkout: ``src/siftlm/defaults.py`` -> root), the house
  models (``$SIFTLM_MODELS_DIR`` or ``models/``), the embedded corpus and its shipped
  vectors, and the datastores (``stores/``, relative to the working directory).
- Defaults: the house model and tokenizer, the datastore's source and embedder.
- ``open_store``: the datastore a command uses, built on first use (open-or-build).
- ``configure_threads``: torch's thread count for the command-line entry points.

Nothing here imports torch, transformers or faiss at import time.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = PROJECT_ROOT / "data" / "minipile"
EMBEDDINGS_DIR = PROJECT_ROOT / "data" / "embeddings"
STORES_DIR = Path("stores")

HOUSE_MODELS: tuple[str, ...] = ("house-small", "house-medium", "house-small-4x")
DEFAULT_MODEL = "house-small"
HOUSE_TOKENIZER = f"models/{DEFAULT_MODEL}"  # the house models share one tokenizer
DEFAULT_SOURCE = "minipile"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"  # = siftlm.datastore.embedders.DEFAULT_EMBEDDER


def models_dir() -> Path:
    """Folder holding the house models: ``$SIFTLM_MODELS_DIR`` or the project's ``models/``."""
    override = os.environ.get("SIFTLM_MODELS_DIR")
    return Path(override) if override else PROJECT_ROOT / "models"


def project_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as given if it exists (or is absolute); a relative path that does not
    exist from the working directory is looked up from the project root, so that
    ``models/house-small`` works from anywhere inside a checkout."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    return PROJECT_ROOT / given if (PROJECT_ROOT / given).exists() else given


def default_store_path(source: str = DEFAULT_SOURCE, embedder: str = DEFAULT_EMBEDDER) -> Path:
    """``stores/<source>-<embedder>``, e.g. ``stores/minipile-all-MiniLM-L6-v2``."""
    source_name = source.partition(":")[0] if source.startswith("minipile") else Path(source).name
    if source.startswith("minipile:") and source != "minipile:memory":
        source_name = source.replace(":", "-")
    embedder_name = Path(embedder.removeprefix("causal:").rstrip("/")).name
    stem = source_name.split(".")[0] or "store"
    return STORES_DIR / f"{stem}-{embedder_name}"


def open_store(store: str | os.PathLike[str] | None = None, tokenizer: str = HOUSE_TOKENIZER):
    """The datastore at ``store`` (verified on opening); by default the embedded memory
    store at ``default_store_path()``, built from the shipped vectors if it is not there
    yet (once: later calls open it)."""
    from siftlm.datastore import Datastore

    if store is not None:
        from siftlm.datastore.sharded import open_any

        return open_any(store)  # a store folder, or a folder of shards (shards.json)
    path = default_store_path()
    if (path / "manifest.json").exists():
        return Datastore.open(path)
    print(f"building the embedded memory store at {path} (once)", file=sys.stderr)
    return Datastore.build(DEFAULT_SOURCE, path, tokenizer=tokenizer)


def choose_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Threads for torch on this machine now: the cores that other processes leave idle
    (CPU count minus the 1-minute load average, rounded), at least 1.

    Measured for the demo (README, "Threads"): on a 2-core machine busy with other work,
    two threads were slower per prompt than one, as each step waits for the slower of
    two contended cores; on an idle machine both cores help."""
    cpus = cpus if cpus is not None else os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - not on every platform
            load = 0.0
    return max(1, min(cpus, math.floor(cpus - load + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads for a command-line run and return the count.

    ``threads`` if given; else ``$OMP_NUM_THREADS`` or ``$SIFTLM_THREADS`` if set (the
    user's choice wins); else ``choose_threads()``. Library calls never change threads:
    only the entry points call this."""
    import torch

    if threads is None:
        for variable in ("SIFTLM_THREADS", "OMP_NUM_THREADS"):
            value = os.environ.get(variable, "").strip()
            if value:
                try:
                    threads = int(value)
                except ValueError:
                    raise ValueError(f"${variable} must be a whole number, got {value!r}") from None
                break
    if threads is None:
        threads = choose_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads
