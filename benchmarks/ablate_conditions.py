"""The conditions of ``benchmarks/ablate.py``: what each run folder holds and how its
``BenchConfig``, model and memory are made (see ablate.py's docstring)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
OUT = HERE / "ablate"
OUT_TEST = HERE / "ablate-test"
MODEL = "house-small"
# `siftlm pretrain --out runs/house-small-4x` saves its final weights into that folder
# (save_pretrained(out), next to checkpoint.pt); --model-4x PATH replaces it
MODEL_4X = "runs/house-small-4x"
SPLIT = "validation"
SPLITS = ("validation", "test")
DOCS_PER_DOMAIN = 2
METHODS = ("nn", "sift")
# BenchConfig values besides the package's defaults, for every condition
TRAINING: dict = {"variance_gate": None, "variance_lr": None, "lr": 3e-4}


class StoreSpec(NamedTuple):
    """A datastore a condition searches instead of the default memory, built (once) from
    ``source`` if ``path`` holds no store, with the default store's chunking."""

    path: str
    embedder: str
    source: Any = "minipile"
    tokenizer: str = f"models/{MODEL}"
    max_tokens: int = 256  # the default store's manifest: chunking max_tokens 256


CAUSAL_STORE = StoreSpec("stores/minipile-causal-house-small", f"causal:models/{MODEL}")


class Condition(NamedTuple):
    """A run folder (``runs/<name>``): BenchConfig overrides and the methods run there;
    ``nn_from``: the folder whose nn results it uses (its own, or a shared one);
    ``model``: the LM (``MODEL_4X`` stands for --model-4x); ``store``: another memory."""

    name: str
    overrides: dict
    methods: tuple[str, ...] = METHODS
    nn_from: str | None = None
    model: str = MODEL
    store: StoreSpec | None = None


def _bench_defaults() -> Any:
    from siftlm.bench import BenchConfig

    return BenchConfig(**TRAINING)


def _lambda_condition(name: str, lambda_: float) -> Condition:
    """sift at another λ; nn too where λ changes its training (``variance_lr``)."""
    if _bench_defaults().variance_lr is None:  # nn's run does not depend on λ
        return Condition(name, {"lambda_": lambda_}, ("sift",), nn_from="all")
    return Condition(name, {"lambda_": lambda_})


# gradient_reuse r recomputes the j-th repeat (from 0) of a window when j % r == 0: a
# window is trained on at most n times per prompt, so r = n computes it once (j = 0) and
# reuses that gradient for every repeat
REUSE_ONCE = _bench_defaults().n

CONDITIONS: tuple[Condition, ...] = (
    Condition("base", {}, ("base",)),
    Condition("all", {}),
    Condition("dup-exact-30", {"duplicates": 0.3, "duplicate_kind": "exact"}),
    Condition("dup-near-30", {"duplicates": 0.3, "duplicate_kind": "near"}),
    Condition("memory-0.25", {"memory_fraction": 0.25}),
    _lambda_condition("lambda-0.01", 0.01),
    Condition("memory-0.5", {"memory_fraction": 0.5}),
    _lambda_condition("lambda-1", 1.0),
    Condition("dup-exact-10", {"duplicates": 0.1, "duplicate_kind": "exact"}),
    Condition("dup-near-10", {"duplicates": 0.1, "duplicate_kind": "near"}),
    # issue 16, items 3 and 4 (appended: the folders above keep their configurations)
    Condition("hull", {}, ("hull",), nn_from="all"),
    Condition("sift-reuse", {"gradient_reuse": REUSE_ONCE}, ("sift",), nn_from="all"),
    Condition("hull-reuse", {"gradient_reuse": REUSE_ONCE}, ("hull",), nn_from="all"),
    Condition("query-chunks", {"query_vectors": "chunks"}),
    Condition("base-4x", {}, ("base",), model=MODEL_4X),
    Condition("model-4x", {}, model=MODEL_4X),
    Condition("embed-causal", {}, store=CAUSAL_STORE),
    Condition("dup-exact-100", {"duplicates": 1.0, "duplicate_kind": "exact"}),
    Condition("query-chunks-4", {"query_vectors": "chunks", "max_targets": 4}),
    Condition(
        "dup-exact-100x4", {"duplicates": 1.0, "duplicate_kind": "exact", "duplicate_copies": 4}
    ),
    Condition(
        "dup-exact-100x9", {"duplicates": 1.0, "duplicate_kind": "exact", "duplicate_copies": 9}
    ),
)
BY_NAME = {c.name: c for c in CONDITIONS}
# the conditions run on the test split (folder OUT_TEST), in this order
TEST_CONDITIONS = ("base", "all", "hull", "sift-reuse", "hull-reuse")


def out_folder(split: str) -> Path:
    """The default folder of a split's runs and summary."""
    return OUT if split == SPLIT else OUT_TEST


def names_for(split: str, only: list[str] | None = None) -> list[str]:
    """The conditions to run on ``split`` (``only``: these of them), in run order."""
    if split not in SPLITS:
        raise SystemExit(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    allowed = [c.name for c in CONDITIONS] if split == SPLIT else list(TEST_CONDITIONS)
    names = only or allowed
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"unknown conditions {unknown}; choose from {', '.join(BY_NAME)}")
    outside = sorted(set(names) - set(allowed))
    if outside:
        raise SystemExit(f"conditions {outside} do not run on the {split} split: {allowed}")
    return [name for name in allowed if name in names]


def model_of(condition: Condition, model_4x: str = MODEL_4X) -> str:
    """The LM a condition runs with (``MODEL_4X`` replaced by ``model_4x``)."""
    return model_4x if condition.model == MODEL_4X else condition.model


def bench_config(
    out: Path,
    condition: Condition,
    rank: int = 0,
    world_size: int = 1,
    *,
    split: str = SPLIT,
    model_4x: str = MODEL_4X,
    **extra,
):
    from siftlm.bench import BenchConfig

    values = {
        "model": model_of(condition, model_4x),
        "split": split,
        "docs_per_domain": DOCS_PER_DOMAIN,
        "methods": condition.methods,
        **TRAINING,
        "curve_methods": (),
        "out": str(out / "runs" / condition.name),
        "rank": rank,
        "world_size": world_size,
        "progress": False,
    }
    if condition.store is not None:
        values["store"] = condition.store.path
    return BenchConfig(**{**values, **condition.overrides, **extra})


def model_unready(path: str) -> str | None:
    """Why the model ``path`` cannot be used yet (None: it can): a pretraining run's folder
    holds its weights only once the run has finished."""
    import json

    from siftlm.models.loading import resolve_model_path

    try:
        folder = Path(resolve_model_path(path))
    except Exception as error:  # noqa: BLE001 - reported, the condition is skipped
        return str(error)
    summary = folder / "pretrain_config.json"
    if summary.is_file() and "finished" not in json.loads(summary.read_text()):
        return f"{folder}: pretraining has not finished (pretrain_config.json has no 'finished')"
    if not (folder / "config.json").is_file():
        return f"{folder}: no model weights (config.json) yet"
    return None


def ensure_store(spec: StoreSpec, **options: Any):
    """The store at ``spec.path``, built first if the folder holds none (resumable; the
    build command of ablate.py's docstring does the same). ``options``: BuildConfig fields."""
    from siftlm.datastore import Datastore

    path = Path(spec.path)
    while not (path / "manifest.json").exists():
        print(f"building {path} with {spec.embedder} (once)", file=sys.stderr, flush=True)
        try:
            Datastore.build(
                spec.source,
                path,
                embedder=spec.embedder,
                tokenizer=spec.tokenizer,
                max_tokens=spec.max_tokens,
                index="flat",
                **options,
            )
        except ValueError:
            if not _wait_for_build(path):
                raise
    return Datastore.open(path)


def _wait_for_build(path: Path) -> bool:
    """Wait while another process (the other worker) builds the store at ``path``;
    False if none does (the lock is free: the build failed for another reason)."""
    import fcntl

    lock = path.parent / f".{path.name}.lock"  # siftlm.datastore.build's lock file
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another build of {path}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)  # until that build ends
            return True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class Resources:
    """Models and stores shared by the conditions of one run, loaded once each.

    ``memory``: the default memory (a store or its folder; None: the embedded one);
    ``loader``: ``load_model``'s stand-in (tests); ``build``: BuildConfig options."""

    def __init__(self, memory: Any = None, loader: Any = None, **build: Any) -> None:
        self.memory, self.loader, self.build = memory, loader, build
        self.models: dict = {}
        self.stores: dict = {}

    def unready(self, name: str) -> str | None:
        """Why model ``name`` cannot be used yet (None: it can; always, with a loader)."""
        return None if self.loader is not None else model_unready(name)

    def model(self, name: str):
        if name not in self.models:
            if self.loader is None:
                from siftlm.models import load_model

                self.models[name] = load_model(name)
            else:
                self.models[name] = self.loader(name)
        return self.models[name]

    def store(self, spec: StoreSpec | None):
        key = None if spec is None else spec.path
        if key not in self.stores:
            if spec is not None:
                self.stores[key] = ensure_store(spec, **self.build)
            elif self.memory is None or isinstance(self.memory, (str, Path)):
                from siftlm.bench import open_store

                self.stores[key] = open_store(self.memory)
            else:
                self.stores[key] = self.memory
        return self.stores[key]
