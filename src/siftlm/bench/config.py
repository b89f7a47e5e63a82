"""The benchmark's configuration: one frozen dataclass, the CLI is built from its fields.

``BenchConfig`` says which model adapts to which documents with which methods; every
method shares the selection and training hyperparameters given here. The selection and
training defaults are ``TTTConfig``'s (one set of defaults for the whole package), chosen
on the validation split with house-small (``benchmarks/sweep.py``). The resolved configuration is written
next to the results (``config.json``) and a resumed run must match it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from siftlm.defaults import DEFAULT_MODEL
from siftlm.training.config import ADAPTIVE_ALPHA, TTTConfig, parse_variance_lr

# One set of defaults: the selection and training values of the benchmark are TTTConfig's.
_TTT = TTTConfig()
# the command line's form of the default learning rates by posterior variance
_TTT_VARIANCE_LR = (
    None if _TTT.variance_lr is None else tuple(f"{b!r}:{lr!r}" for b, lr in _TTT.variance_lr)
)

# The methods of the paper's comparison, in the order of its tables.
ALL_METHODS: tuple[str, ...] = (
    "base",
    "context",
    "nn",
    "nn-f",
    "us",
    "random",
    "sift",
    "sift-adaptive",
)
# Fields that do not change any result: a resumed run may differ in them.
_RUN_ONLY = frozenset({"out", "progress", "rank", "world_size"})


@dataclass(frozen=True)
class BenchConfig:
    """Test-time fine-tuning evaluated by bits per byte over a corpus split."""

    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "causal LM: house name, local path or hub name"}
    )
    store: str | None = field(
        default=None,
        metadata={
            "help": "datastore folder (default: the embedded memory store, built if missing)"
        },
    )
    split: str = field(default="test", metadata={"help": "corpus split to evaluate"})
    methods: tuple[str, ...] = field(default=ALL_METHODS, metadata={"help": "methods to compare"})
    domains: tuple[str, ...] | None = field(
        default=None, metadata={"help": "restrict to these domains (default: all)"}
    )
    docs_per_domain: int | None = field(
        default=None, metadata={"help": "first N documents of each domain (default: all)"}
    )
    skip_docs: int = field(
        default=0,
        metadata={
            "help": "skip the first N documents of each domain (a fresh sample after a sweep"
            " used the first ones)"
        },
    )
    n: int = field(
        default=_TTT.n, metadata={"help": "sequences selected (gradient steps) per prompt"}
    )
    k: int = field(default=_TTT.k, metadata={"help": "candidates pre-selected by the index"})
    lambda_: float = field(default=_TTT.lambda_, metadata={"help": "SIFT's noise variance λ"})
    alpha: float = field(
        default=ADAPTIVE_ALPHA, metadata={"help": "adaptive SIFT's α (sift-adaptive)"}
    )
    lr: float = field(default=_TTT.lr, metadata={"help": "learning rate"})
    warmup: int = field(
        default=_TTT.warmup, metadata={"help": "steps of linear learning-rate warm-up per prompt"}
    )
    proximal: float = field(
        default=_TTT.proximal, metadata={"help": "μ of the proximal term μ/2 ||W - W_0||² (0: off)"}
    )
    variance_gate: float | None = field(
        default=_TTT.variance_gate,
        metadata={
            "help": "train only if SIFT's posterior variance after selection is at most this"
            " fraction of the prior (none: always train)"
        },
    )
    variance_lr: tuple[str, ...] | None = field(
        default=_TTT_VARIANCE_LR,
        metadata={
            "help": "learning rates by posterior variance, BOUND:LR ...: lr LR where"
            " σ²_n/σ²_0 <= BOUND (first match), --lr above the last bound"
        },
    )
    early_stop: int | None = field(
        default=None,
        metadata={
            "help": "first-half only: check the known half's loss every this many steps,"
            " stop when it rises, keep the best weights (none: off)"
        },
    )
    gradient_reuse: int | None = field(
        default=_TTT.gradient_reuse,
        metadata={
            "help": "recompute a repeated sequence's gradient every this many repeats and"
            " reuse it in between (none: always recompute)"
        },
    )
    exclude: str | None = field(
        default=None,
        metadata={
            "help": "held-out protocol: same-source (no memory from the document's source"
            " file) or same-domain (leave-one-domain-out); none: standard"
        },
    )
    query: str = field(
        default="document",
        metadata={
            "help": "document (adapt to the whole document) or first-half (adapt to the first"
            " half of its tokens, score the second half)"
        },
    )
    query_vectors: str = field(
        default=_TTT.query_vectors,
        metadata={
            "help": "one (embed the query text as one vector, cut to the embedder's limit) or"
            " chunks (embed each of its memory-length chunks: a multi-vector query; see"
            " TTTConfig)"
        },
    )
    target_tokens: int | None = field(
        default=_TTT.target_tokens,
        metadata={
            "help": "chunks only: LM tokens per query chunk (none: the datastore's chunk length)"
        },
    )
    max_targets: int | None = field(
        default=_TTT.max_targets,
        metadata={
            "help": "chunks only: at most this many query chunks, evenly spaced (1: the first;"
            " none: all)"
        },
    )
    memory_fraction: float = field(
        default=1.0,
        metadata={
            "help": "ablation: search only this fraction of the memory, a fixed random subset"
            " drawn with --seed (nested: the 1/4 subset is part of the 1/2 one; 1: all)"
        },
    )
    duplicates: float = field(
        default=0.0,
        metadata={
            "help": "ablation: inject into the memory a copy of each sequence with this"
            " probability (0: none; only copies the documents can retrieve are made)"
        },
    )
    duplicate_copies: int = field(
        default=1,
        metadata={
            "help": "ablation: copies injected per duplicated sequence (exact copies only;"
            " 1: the sequence is in the memory twice)"
        },
    )
    duplicate_kind: str = field(
        default="exact",
        metadata={
            "help": "exact copies, or near copies (a tenth of the words replaced; embedded"
            " once and cached in --out)"
        },
    )
    optimizer: str = field(default=_TTT.optimizer, metadata={"help": "adam, adamw or sgd"})
    finetune: str = field(default=_TTT.finetune, metadata={"help": "full or lora"})
    curve_methods: tuple[str, ...] = field(
        default=("nn", "sift"),
        metadata={
            "help": "methods whose learning curve (bpb after each step) is recorded"
            " (none: no curves)"
        },
    )
    curve_every: int = field(
        default=1,
        metadata={
            "help": "learning curves are scored after steps 0-10, then every this many steps"
            " (1: every step)"
        },
    )
    max_length: int | None = field(
        default=None, metadata={"help": "context length in tokens (default: the model's)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed (per prompt)"})
    out: str = field(default="runs/bench", metadata={"help": "results folder"})
    rank: int = field(
        default=0, metadata={"help": "this worker's share: documents rank::world_size"}
    )
    world_size: int = field(default=1, metadata={"help": "number of workers sharing the documents"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        for name in ("methods", "domains", "curve_methods"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if _says_none(self.curve_methods):
            object.__setattr__(self, "curve_methods", ())  # --curve-methods none
        if _says_none(self.variance_lr):
            object.__setattr__(self, "variance_lr", None)  # --variance-lr none
        if self.variance_lr is not None:  # canonical "bound:lr" strings, as saved
            bands = parse_variance_lr(self.variance_lr)
            object.__setattr__(self, "variance_lr", tuple(f"{b!r}:{lr!r}" for b, lr in bands))
        if not self.methods:
            raise ValueError("methods must name at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods has repeats: {', '.join(self.methods)}")
        if self.docs_per_domain is not None and self.docs_per_domain < 1:
            raise ValueError(f"docs_per_domain must be >= 1, got {self.docs_per_domain}")
        if self.skip_docs < 0:
            raise ValueError(f"skip_docs must be >= 0, got {self.skip_docs}")
        self._check_ablation()
        if self.curve_every < 1:
            raise ValueError(f"curve_every must be >= 1, got {self.curve_every}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        # Every method's training configuration is validated now, not after hours of work.
        for method in self.methods:
            self.ttt_config(method)

    def _check_ablation(self) -> None:
        if not 0 < self.memory_fraction <= 1:
            raise ValueError(f"memory_fraction must be in (0, 1], got {self.memory_fraction}")
        if not 0 <= self.duplicates <= 1:
            raise ValueError(f"duplicates must be in [0, 1], got {self.duplicates}")
        if self.duplicate_copies < 1:
            raise ValueError(f"duplicate_copies must be >= 1, got {self.duplicate_copies}")
        if self.duplicate_copies > 1 and self.duplicate_kind != "exact":
            raise ValueError("duplicate_copies > 1 is for exact copies only")
        if self.duplicate_kind not in ("exact", "near"):
            raise ValueError(
                f"unknown duplicate_kind {self.duplicate_kind!r} (choose from exact, near)"
            )

    def ttt_config(self, method: str):
        """The ``TTTConfig`` that ``method`` runs with under this benchmark."""
        from siftlm.training import TTTConfig

        return TTTConfig.from_name(
            method,
            n=self.n,
            k=self.k,
            lambda_=self.lambda_,
            **({"alpha": self.alpha} if method == "sift-adaptive" else {}),
            lr=self.lr,
            warmup=self.warmup,
            proximal=self.proximal,
            variance_gate=self.variance_gate,
            variance_lr=self.variance_lr,
            early_stop=self.early_stop,
            gradient_reuse=self.gradient_reuse,
            exclude=self.exclude,
            query=self.query,
            query_vectors=self.query_vectors,
            target_tokens=self.target_tokens,
            max_targets=self.max_targets,
            optimizer=self.optimizer,
            finetune=self.finetune,
            max_length=self.max_length,
            seed=self.seed,
        )

    def curve_steps(self, method: str) -> bool | list[int]:
        """What ``TestTimeTrainer.evaluate(curve=...)`` gets for ``method``."""
        if method not in self.curve_methods:
            return False
        if self.curve_every == 1:
            return True
        return sorted({*range(11), *range(0, self.n + 1, self.curve_every)})

    def to_dict(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def check_resumable(self, path: Path, facts: dict[str, Any] | None = None) -> None:
        """Fail if ``path`` (a saved config.json) was made with other result-affecting
        values, or with other ``facts`` of the run (e.g. the model's size, the store's
        chunks; a fact that the saved file does not record is not compared)."""
        saved = json.loads(path.read_text())
        mine = self.to_dict()

        def refuse(what: str, differ: list[str]) -> None:
            if differ:
                raise ValueError(
                    f"{path.parent} holds results {what} ({'; '.join(differ)}); "
                    "pass another --out to start a new run"
                )

        refuse(
            "of another configuration",
            [
                f"{key}: {saved.get(key)!r} there, {mine[key]!r} now"
                for key in mine
                if key not in _RUN_ONLY and key in saved and saved[key] != mine[key]
            ],
        )
        refuse(
            "made with another model or datastore",
            [
                f"{key}: {saved[key]!r} there, {value!r} now"
                for key, value in (facts or {}).items()
                if saved.get(key) is not None and saved[key] != value
            ],
        )


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); ``X`` -> (X, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def _says_none(values: Any) -> bool:
    """Whether a list option was given as the one word ``none`` (any case)."""
    return values is not None and [str(v).lower() for v in values] == ["none"]


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls: type = BenchConfig, **defaults) -> None:
    """Add one ``--option`` per dataclass field (``lambda_`` -> ``--lambda``)."""
    hints = get_type_hints(cls)
    for spec in fields(cls):
        kind, optional = _unwrap(hints[spec.name])
        flag = "--" + spec.name.rstrip("_").replace("_", "-")
        default = defaults.get(spec.name, spec.default)
        help_text = spec.metadata.get("help", "")
        if "(default:" not in help_text or spec.name in defaults:  # one default, the real one
            help_text = f"{help_text.split(' (default:')[0]} (default: {default})"
        options: dict[str, Any] = {"dest": spec.name, "default": default, "help": help_text}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is tuple:
            options.update(nargs="+", type=str)
        else:
            options["type"] = _none_or(kind) if optional else kind
        parser.add_argument(flag, **options)


def from_arguments(args: argparse.Namespace, cls: type = BenchConfig):
    """The dataclass from a namespace filled by ``add_arguments``."""
    return cls(**{spec.name: getattr(args, spec.name) for spec in fields(cls)})
