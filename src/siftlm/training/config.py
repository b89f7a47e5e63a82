"""Configuration of test-time training: one frozen dataclass, validated on creation.

``TTTConfig`` is the single source of truth for a run; ``to_dict`` gives the resolved
values to save next to results, ``from_name`` maps the method names of the benchmark
("base", "context", "sift-adaptive", ...) onto a configuration.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

# The selection methods of ``siftlm.select``, used when that module cannot be imported.
_SELECTION_METHODS: tuple[str, ...] = ("sift", "nn", "nn-f", "us", "random", "mmr", "hull")
# "base": no retrieval and no training, the baseline every table is relative to.
BASE_METHOD = "base"
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
FINETUNE: tuple[str, ...] = ("full", "lora")
MODES: tuple[str, ...] = ("finetune", "context")
# Adaptive SIFT's α where a method name asks for it ("sift-adaptive") and none is given.
ADAPTIVE_ALPHA = 0.02
# held-out protocols (siftlm.training.heldout)
EXCLUDE_MODES: tuple[str, ...] = ("same-source", "same-domain")
QUERY_MODES: tuple[str, ...] = ("document", "first-half")
# how the query text becomes target vectors (siftlm.training.targets)
QUERY_VECTORS: tuple[str, ...] = ("one", "chunks")


def selection_methods() -> tuple[str, ...]:
    """The method names ``siftlm.select`` accepts (its registry where importable)."""
    try:
        from siftlm.selection import available_methods
    except ImportError:
        return _SELECTION_METHODS
    return tuple(available_methods())


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {what} {value!r} (choose from {', '.join(choices)}){hint}")


@dataclass(frozen=True)
class LoRASettings:
    """LoRA adapter settings (see ``peft.LoraConfig``); a fresh adapter per prompt.

    ``target_modules=None`` uses peft's default for the architecture (GPT-2: ``c_attn``,
    Llama: ``q_proj``/``v_proj``).
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None:
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            if not self.target_modules:
                raise ValueError("LoRA target_modules must be None or non-empty")


def _is_peft_lora(value: Any) -> bool:
    return type(value).__name__ == "LoraConfig" and hasattr(value, "lora_alpha")


def _lora_to_dict(lora: Any) -> dict[str, Any]:
    """JSON-able: LoRASettings' fields, or a peft LoraConfig's non-default fields with
    ``"peft": "LoraConfig"``."""
    if isinstance(lora, LoRASettings):
        values = dataclasses.asdict(lora)
        if values["target_modules"] is not None:
            values["target_modules"] = list(values["target_modules"])
        return values
    defaults = type(lora)()
    values: dict[str, Any] = {"peft": "LoraConfig"}
    for spec in dataclasses.fields(lora):
        value = getattr(lora, spec.name)
        if spec.init and value != getattr(defaults, spec.name):
            values[spec.name] = sorted(value) if isinstance(value, set) else value
    return json.loads(json.dumps(values, default=str))


def _lora_from_dict(values: dict[str, Any]) -> Any:
    values = dict(values)
    if values.pop("peft", None) == "LoraConfig":
        from peft import LoraConfig

        return LoraConfig(**values)
    return LoRASettings(**values)


def _check_types(config: Any) -> None:
    """Every numeric field holds a number of its declared kind, finite (no bool for int,
    no str); the range checks follow in ``__post_init__``."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        annotation = str(spec.type)
        if value is None and "None" in annotation:
            continue
        if annotation.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{spec.name} must be an int, got {value!r}")
        elif annotation.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{spec.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{spec.name} must be finite, got {value!r}")
        elif annotation == "bool" and not isinstance(value, bool):
            raise TypeError(f"{spec.name} must be True or False, got {value!r}")


def parse_variance_lr(bands: Any) -> tuple[tuple[float, float], ...]:
    """``variance_lr`` as ((bound, lr), ...): pairs or ``"bound:lr"`` strings, bounds
    strictly increasing in (0, 1], learning rates > 0; anything else a ValueError."""
    if isinstance(bands, str) or not isinstance(bands, (list, tuple)) or not bands:
        raise ValueError(f"variance_lr must be a non-empty sequence of (bound, lr), got {bands!r}")
    parsed = []
    for band in bands:
        pair = band.split(":") if isinstance(band, str) else band
        try:
            bound, lr = (float(value) for value in pair)
        except (TypeError, ValueError):
            raise ValueError(
                f"variance_lr entry {band!r} is not a (bound, lr) pair nor 'bound:lr'"
            ) from None
        if not (0 < bound <= 1 and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"variance_lr entry {band!r}: need 0 < bound <= 1 and lr > 0")
        parsed.append((bound, lr))
    bounds = [bound for bound, _ in parsed]
    if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"variance_lr bounds must increase strictly, got {bounds}")
    return tuple(parsed)


@dataclass(frozen=True)
class TTTConfig:
    """How to adapt to one prompt.

    Selection: ``k`` candidates are retrieved by cosine similarity, ``n`` of them are
    selected with ``method`` (``siftlm.select``; ``lambda_``, ``alpha`` and ``distinct``
    are passed on). ``method="base"`` retrieves nothing and trains nothing.

    Training (``mode="finetune"``): one step per selected sequence (one per chunk for
    sequences longer than the context), batch size 1, a fresh ``optimizer`` per prompt
    with ``lr``, ``eps``, ``weight_decay`` and gradient-norm clipping at ``grad_clip``
    (None: no clipping). ``finetune="full"`` trains every parameter, ``"lora"`` a fresh
    adapter per prompt, configured by ``lora``: a peft ``LoraConfig`` (used as given,
    except that ``fan_in_fan_out`` follows the model) or the light ``LoRASettings``. ``mode="context"`` puts the selected sequences before the text
    instead of training: at least ``context_tokens`` of every window (None: half the
    window) hold them, the text's rolling windows take the rest; a short text leaves
    the context all the room it does not use.

    Training options against harm where the memory has little to offer (chosen on
    validation, ``benchmarks/sweep.py``, ``sweep_schedules.py`` and
    ``confirm_schedule.py``; on by default: the gate at 0.3 and ``variance_lr`` 3e-4
    below 0.2, i.e. lr 3e-4 where σ²_n/σ²_0 <= 0.2, 1e-4 up to 0.3, no training above):

    - ``warmup``: the learning rate rises linearly over the first ``warmup`` steps of
      every prompt (step s uses lr * min(1, s / warmup)).
    - ``proximal``: μ of the surrogate's proximal term μ/2 ||W - W_0||^2 added to every
      step's loss (W_0: the trainable weights before the prompt's first step).
    - ``variance_gate``: train only if the selection leaves the prompt's posterior
      variance at most this fraction of its prior variance (σ²_n / σ²_0 <= gate);
      otherwise the prompt is answered by the base model (0 steps).
    - ``variance_lr``: learning rates by posterior variance, ``((r_1, lr_1), (r_2, lr_2),
      ...)`` with 0 < r_1 < r_2 < ... <= 1: a prompt with σ²_n / σ²_0 <= r_1 trains with
      lr_1, else with lr_2 if <= r_2, ...; above the last bound with ``lr`` (the gate
      still applies). E.g. ``lr=1e-4, variance_gate=0.3, variance_lr=((0.2, 3e-4),)``:
      3e-4 where the selection explains the prompt well, 1e-4 where less, none above 0.3.
      Strings ``"r:lr"`` are accepted for pairs (the command line's form). The gate and
      the bands in one rule: ``training_lr``.
    - ``early_stop`` (``query="first-half"`` only): score the known first half before
      training and every ``early_stop`` steps; stop at the first check where its loss
      rises and keep the weights of the best check.
    - ``gradient_reuse`` (speed): a window trained on again (a sequence selected twice)
      recomputes its gradient only every ``gradient_reuse``-th time and reuses the last
      one in between (HullFT's trick; an approximation).

    Held-out protocols (``siftlm.training.heldout``): ``exclude`` ("same-source": no
    sequence of the document's source unit; "same-domain": none of its domain) needs the
    ``doc_id``/``domain`` of ``evaluate``; ``query="first-half"`` adapts to the first half
    of the document's tokens and scores only the second half.

    Query vectors (``siftlm.training.targets``): ``query_vectors="one"`` embeds the query
    text (the document, or its first half) as one vector x* (d,), which the embedder cuts
    to its own input limit (all-MiniLM-L6-v2: the first 256 wordpieces). ``"chunks"`` cuts
    it into consecutive pieces of at most ``target_tokens`` LM tokens (None: the memory's
    chunk length, its manifest's ``chunking.max_tokens``) as the datastore cuts documents,
    keeps ``max_targets`` of them evenly spaced (None: all; 1: the first piece), and embeds
    each: m targets Q (m, d). Each target retrieves ``k`` (exclusions hold for each); the
    candidates are the ``k`` distinct sequences of that union with the largest
    max_j cos(x, q_j), i.e. the memory's k nearest sequences to the set of targets. The
    selection gets the (1, m, d) query: SIFT minimises Σ_j σ²_n(q_j) (nn, mmr and hull use
    the targets' mean). The reported ``prior_variance``, ``posterior_variance`` and
    ``variances`` are then means over the targets, Σ_j σ²(q_j) / m, so ``variance_gate``
    and ``variance_lr`` read Σ_j σ²_n(q_j) / Σ_j σ²_0(q_j) (bounds chosen for one vector
    need not suit this ratio). A query of one piece (m = 1) is selected for
    exactly as with "one" (the piece is the whole query text).

    ``max_length``: the context length in tokens (None: the model's maximum positions).
    ``seed``: the random state at the start of every prompt, so that a prompt's result
    does not depend on which prompts came before (the caller's random state is kept).
    """

    method: str = "sift"
    n: int = 45
    k: int = 200
    lambda_: float = 0.1
    alpha: float | None = None
    distinct: bool = False
    lr: float = 1e-4
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    finetune: Literal["full", "lora"] = "full"
    lora: Any = field(default_factory=LoRASettings)
    mode: Literal["finetune", "context"] = "finetune"
    context_tokens: int | None = None
    warmup: int = 0
    proximal: float = 0.0
    variance_gate: float | None = 0.3
    variance_lr: tuple[tuple[float, float], ...] | None = ((0.2, 3e-4),)
    early_stop: int | None = None
    gradient_reuse: int | None = None
    exclude: Literal["same-source", "same-domain"] | None = None
    query: Literal["document", "first-half"] = "document"
    query_vectors: Literal["one", "chunks"] = "one"
    target_tokens: int | None = None
    max_targets: int | None = None
    max_length: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_choice("method", self.method, (BASE_METHOD, *selection_methods()))
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("finetune", self.finetune, FINETUNE)
        _check_choice("mode", self.mode, MODES)
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", _lora_from_dict(self.lora))
        if not isinstance(self.lora, LoRASettings) and not _is_peft_lora(self.lora):
            raise TypeError(
                f"lora must be a peft LoraConfig or LoRASettings, got {type(self.lora).__name__}"
            )
        if self.n < 1:
            raise ValueError(f"n (sequences to select) must be >= 1, got {self.n}")
        if self.k < 1:
            raise ValueError(f"k (candidates to retrieve) must be >= 1, got {self.k}")
        if self.distinct and self.n > self.k:
            raise ValueError(
                f"n={self.n} distinct sequences cannot be selected from k={self.k} candidates"
            )
        if self.lambda_ <= 0:
            raise ValueError(f"lambda_ must be > 0, got {self.lambda_}")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"alpha must be > 0 or None, got {self.alpha}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.context_tokens is not None and self.context_tokens < 2:
            raise ValueError(f"context_tokens must be >= 2, got {self.context_tokens}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 tokens, got {self.max_length}")
        self._check_heldout_options()

    def _check_heldout_options(self) -> None:
        if self.exclude is not None:
            _check_choice("exclude", self.exclude, EXCLUDE_MODES)
        _check_choice("query", self.query, QUERY_MODES)
        _check_choice("query_vectors", self.query_vectors, QUERY_VECTORS)
        for name in ("target_tokens", "max_targets"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
            if value is not None and self.query_vectors != "chunks":
                raise ValueError(
                    f"{name} cuts the query into targets: it needs query_vectors='chunks'"
                )
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 steps, got {self.warmup}")
        if self.proximal < 0:
            raise ValueError(f"proximal must be >= 0, got {self.proximal}")
        if self.variance_gate is not None and not 0 < self.variance_gate <= 1:
            raise ValueError(f"variance_gate must be in (0, 1] or None, got {self.variance_gate}")
        if self.variance_lr is not None:
            object.__setattr__(self, "variance_lr", parse_variance_lr(self.variance_lr))
        if self.gradient_reuse is not None and self.gradient_reuse < 2:
            raise ValueError(
                f"gradient_reuse must be >= 2 (recompute every r-th repeat) or None, "
                f"got {self.gradient_reuse}"
            )
        if self.early_stop is not None:
            if self.early_stop < 1:
                raise ValueError(f"early_stop must be >= 1 step or None, got {self.early_stop}")
            if self.query != "first-half":
                raise ValueError(
                    "early_stop scores the known first half, so it needs query='first-half'"
                )

    def training_lr(
        self, posterior_variance: float | None, prior_variance: float | None
    ) -> float | None:
        """The learning rate a prompt trains with, or None where ``variance_gate`` keeps
        it from training (the base model answers it): the one rule of the trainer, the
        server and the benchmarks, for a configuration that trains (``trains``).

        With the ratio r = σ²_n / σ²_0 of the selection's posterior variance
        (``posterior_variance``) to the prompt's prior variance (``prior_variance``):

            gated          if variance_gate is not None and σ²_n > variance_gate · σ²_0
                           (r > variance_gate),
            lr = lr_i      for the first band (r_i, lr_i) of ``variance_lr`` with r <= r_i,
            lr = ``lr``    otherwise (also without ``variance_lr``).

        Without a ratio (σ²_0 = 0 or None, or σ²_n None: nothing to compare) neither the
        gate nor the bands apply: ``lr``. For a multi-vector query both variances are
        means over its targets, so r = Σ_j σ²_n(q_j) / Σ_j σ²_0(q_j). A negative or NaN
        variance is a ValueError.
        """
        for name, value in (("posterior", posterior_variance), ("prior", prior_variance)):
            if value is not None and not value >= 0:
                raise ValueError(f"{name} variance must be >= 0, got {value!r}")
        if not prior_variance or posterior_variance is None:
            return self.lr
        gate = self.variance_gate
        if gate is not None and posterior_variance > gate * prior_variance:
            return None
        ratio = posterior_variance / prior_variance
        for bound, lr in self.variance_lr or ():
            if ratio <= bound:
                return lr
        return self.lr

    @property
    def name(self) -> str:
        """The benchmark name of this configuration (inverse of ``from_name``)."""
        if self.method == BASE_METHOD:
            return BASE_METHOD
        if self.mode == "context":
            return "context" if self.method == "nn" else f"context-{self.method}"
        if self.method == "sift" and self.alpha is not None:
            return "sift-adaptive"
        return self.method

    @property
    def trains(self) -> bool:
        """Whether the model takes gradient steps (not for "base" nor in context mode)."""
        return self.method != BASE_METHOD and self.mode == "finetune"

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration, JSON-serialisable."""
        values = {spec.name: getattr(self, spec.name) for spec in dataclasses.fields(self)}
        values["lora"] = _lora_to_dict(self.lora)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TTTConfig:
        return cls(**values)  # a dict "lora" is converted by __post_init__

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> TTTConfig:
        """The configuration of a benchmark method name.

        "base": no training; "context": nearest neighbours in the context, "context-<m>":
        the selection of method m in the context; "sift-adaptive": SIFT with ``alpha``
        (required); any selection method name ("sift", "nn", "nn-f", "us", "random",
        "mmr"): fine-tuning on that selection.
        """
        if name == "context" or name.startswith("context-"):
            method = name.removeprefix("context-") if name != "context" else "nn"
            return cls(**{**overrides, "method": method, "mode": "context"})
        if name == "sift-adaptive":
            if overrides.get("alpha") is None:
                raise ValueError("method 'sift-adaptive' needs alpha (e.g. alpha=0.55)")
            return cls(**{**overrides, "method": "sift"})
        if name == BASE_METHOD or name in selection_methods():
            return cls(**{**overrides, "method": name})
        _check_choice(
            "method", name, (BASE_METHOD, "context", "sift-adaptive", *selection_methods())
        )
        raise AssertionError("unreachable")
