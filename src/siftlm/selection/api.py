"""`select`: one function for every selection method, and its typed result `Selection`."""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from siftlm.selection.greedy import greedy
from siftlm.selection.registry import Method, get_method
from siftlm.selection.stopping import adaptive_steps

# Prompts are processed in chunks whose (chunk, K, K) matrices (the Gram matrix and the
# duplicate check's scratch), counted at 8 bytes per entry, fit this budget.
GRAM_BYTES = 1 << 29


@dataclass(frozen=True)
class Selection:
    """Picks per prompt, in the prompts' order. Always numpy arrays on the CPU.

    Attributes:
        indices: (B, n) int64 positions on the candidate axis, in pick order; -1 after
            `steps` (the picks adaptive stopping cut).
        variances: (B, n) float64 posterior variance σ²(x*) of the prompt after each pick
            (under the SIFT posterior with the given λ, whatever the method); NaN after `steps`.
            For a multi-vector prompt, the sum Σ_j σ²(x*_j) over its (unmasked) targets,
            the quantity SIFT minimises.
        prior_variances: (B,) float64 σ²(x*) before any pick, k(x*, x*) = ‖φ(x*)‖²; for a
            multi-vector prompt the sum over its targets.
        steps: (B,) int64 picks kept: n, unless adaptive stopping (`alpha`) cut earlier.
        method, lambda_, alpha: the settings that produced it.
        seconds: wall-clock time of the selection.

    A single prompt ((d,) query) gives the same fields without the batch axis.
    """

    indices: np.ndarray
    variances: np.ndarray
    prior_variances: np.ndarray
    steps: np.ndarray
    method: str
    lambda_: float
    alpha: float | None
    seconds: float

    def kept(self, prompt: int | None = None) -> np.ndarray:
        """The kept picks (int64) of one prompt; `prompt` is omitted for a single prompt."""
        if self.indices.ndim == 1:
            if prompt not in (None, 0):
                raise ValueError("a single-prompt Selection has only prompt 0")
            return self.indices[: int(self.steps)]
        if prompt is None:
            raise ValueError("a batched Selection needs the prompt's position")
        return self.indices[prompt, : int(self.steps[prompt])]


class _Inputs(NamedTuple):
    """Validated inputs: queries (B, d) or (B, m, d), candidates (B, K, d) or (K, d)."""

    queries: torch.Tensor
    candidates: torch.Tensor
    target_mask: torch.Tensor | None  # (B, m) bool, multi-vector queries only
    single: bool  # a (d,) query: results lose the batch axis

    @property
    def targets(self) -> torch.Tensor | None:
        """(B,) float64 targets per prompt of multi-vector queries; None otherwise."""
        if self.queries.dim() == 2:
            return None
        if self.target_mask is None:
            batch, m = self.queries.shape[:2]
            return torch.full((batch,), float(m), dtype=torch.float64, device=self.queries.device)
        return self.target_mask.sum(1).to(torch.float64)


def select(
    queries: Any,
    candidates: Any,
    n: int,
    method: str | Method = "sift",
    lambda_: float = 0.01,
    alpha: float | None = None,
    distinct: bool = False,
    seed: int = 0,
    target_mask: Any = None,
) -> Selection:
    """Select n candidates per prompt.

    Args:
        queries: (B, d) one embedding per prompt, (d,) for a single prompt, or (B, m, d)
            m targets per prompt (SIFT minimises the sum of their posterior variances, as
            activeft's VTL with an m × d target; nn, mmr, hull use the targets' mean).
            numpy array or torch tensor, any float dtype.
        candidates: (B, K, d) each prompt's own candidates, or (K, d) shared by all.
            Embeddings are used as given (not normalised). Torch tensors on a CUDA device
            are processed there (both inputs on the same device).
        n: picks per prompt, >= 1.
        method: a name from `available_methods()` ("sift", "nn", "nn-f", "us", "random",
            "mmr", "hull") or a `Method` instance (e.g. `MMR(relevance=0.7)`).
        lambda_: observation-noise variance λ > 0 of the SIFT posterior.
        alpha: adaptive stopping: a prompt stops at the first step t (from 1) where its
            posterior standard deviation exceeds 1/(alpha·t); see `stopping`. For a
            multi-vector prompt the standard deviation is sqrt(Σ_j σ²_t(x*_j) / m), the
            root mean variance per target, so alpha means the same for any m.
        distinct: forbid picking a candidate twice (sift, us). nn, random and mmr never
            repeat; nn-f and hull may.
        seed: seed of the "random" method.
        target_mask: (B, m) bool with (B, m, d) queries, True where a target exists;
            absent targets are ignored whatever their values; each prompt needs one.

    Kernel values are computed in the inputs' precision (float32 unless either input is
    float64), the posterior updates in float64, on the inputs' device; results are numpy
    on the CPU. Ties go to the lowest candidate index, and candidates with bitwise-equal
    embeddings always score alike, so the first copy is picked first.

    Raises:
        ValueError: bad shapes, batch sizes or dimensions; n < 1; K < 1; more picks than
            candidates without repeats; lambda_ <= 0 or not finite; alpha <= 0; NaN or
            infinite embeddings; an empty batch; an unknown method; a bad target_mask.
    """
    started = time.perf_counter()
    rule = get_method(method)
    inputs = _as_inputs(queries, candidates, target_mask)
    n, lambda_, alpha = _check_settings(rule, inputs, n, lambda_, alpha, distinct, seed)
    with torch.inference_mode():  # no autograd bookkeeping: less overhead per operation
        indices, variances, prior = _run_in_chunks(rule, inputs, n, lambda_, distinct, seed)
    steps, indices, variances = _stop(indices, variances, alpha, inputs.targets)
    arrays = [tensor.cpu().numpy() for tensor in (indices, variances, prior, steps)]
    if inputs.single:
        arrays = [array[0] for array in arrays]
    seconds = time.perf_counter() - started
    return Selection(*arrays, method=rule.name, lambda_=lambda_, alpha=alpha, seconds=seconds)


def _check_settings(
    rule: Method,
    inputs: _Inputs,
    n: Any,
    lambda_: Any,
    alpha: Any,
    distinct: bool,
    seed: Any,
) -> tuple[int, float, float | None]:
    """Checked (n, lambda_, alpha); raises ValueError naming a bad setting."""
    n = _check_count("n", n)
    lambda_ = _check_positive("lambda_", lambda_)
    if alpha is not None:
        alpha = _check_positive("alpha", alpha)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    num_candidates = inputs.candidates.shape[-2]
    forbid_repeats = distinct if rule.repeats is None else not rule.repeats
    if rule.repeats and distinct:
        raise ValueError(f"method {rule.name!r} repeats its pick by definition; drop distinct=True")
    if forbid_repeats and n > num_candidates:
        why = "distinct=True" if rule.repeats is None else f"method {rule.name!r} never repeats"
        raise ValueError(f"n={n} picks from K={num_candidates} candidates, but {why}")
    return n, lambda_, alpha


def _run_in_chunks(
    rule: Method, inputs: _Inputs, n: int, lambda_: float, distinct: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The greedy loop over chunks of prompts whose (chunk, K, K) matrices (the Gram
    matrix and the duplicate check's scratch), at 8 bytes per entry, fit GRAM_BYTES."""
    queries, candidates, mask = inputs.queries, inputs.candidates, inputs.target_mask
    num_candidates = candidates.shape[-2]
    batch = queries.shape[0]
    chunk = max(1, GRAM_BYTES // (8 * num_candidates * num_candidates))
    parts = []
    for start in range(0, batch, chunk):
        stop = min(start + chunk, batch)
        part_candidates = candidates if candidates.dim() == 2 else candidates[start:stop]
        part_mask = None if mask is None else mask[start:stop]
        parts.append(
            greedy(
                rule,
                queries[start:stop],
                part_candidates,
                n,
                lambda_,
                distinct,
                seed,
                start,
                part_mask,
            )
        )
    if len(parts) == 1:
        return parts[0]
    indices, variances, prior = (torch.cat(part) for part in zip(*parts, strict=True))
    return indices, variances, prior


def _stop(
    indices: torch.Tensor,
    variances: torch.Tensor,
    alpha: float | None,
    targets: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adaptive stopping: (steps (B,), indices with -1 and variances with NaN after steps).

    Multi-vector prompts stop on the mean variance per target (variances / targets)."""
    batch, n = indices.shape
    if alpha is None:
        return torch.full((batch,), n, dtype=torch.long, device=indices.device), indices, variances
    per_target = variances if targets is None else variances / targets.unsqueeze(1)
    steps = adaptive_steps(per_target, alpha)
    cut = torch.arange(n, device=indices.device).unsqueeze(0) >= steps.unsqueeze(1)
    return steps, indices.masked_fill(cut, -1), variances.masked_fill(cut, float("nan"))


def _as_inputs(queries: Any, candidates: Any, target_mask: Any) -> _Inputs:
    """Validate and convert: queries (d,), (B, d) or (B, m, d); candidates (B, K, d) or
    (K, d); float32 or float64 both; the mask (B, m) bool."""
    device = _common_device(queries, candidates)
    query_tensor = _as_tensor("queries", queries, device)
    candidate_tensor = _as_tensor("candidates", candidates, device)
    # Kernel values in the inputs' precision: float64 if either is, float32 otherwise.
    dtype = torch.promote_types(
        torch.promote_types(query_tensor.dtype, candidate_tensor.dtype), torch.float32
    )
    query_tensor, candidate_tensor = query_tensor.to(dtype), candidate_tensor.to(dtype)
    single = query_tensor.dim() == 1
    _check_shapes(query_tensor, candidate_tensor)
    if single:
        query_tensor = query_tensor.unsqueeze(0)
    mask = _as_mask(target_mask, query_tensor)
    if mask is not None:  # absent targets may hold anything: they become zero vectors
        query_tensor = torch.where(mask.unsqueeze(-1), query_tensor, 0.0)
    for name, tensor in (("queries", query_tensor), ("candidates", candidate_tensor)):
        # One cheap pass (a sum) first; the element-wise check only if the sum is not finite.
        if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contain NaN or infinite values")
    return _Inputs(query_tensor, candidate_tensor, mask, single)


def _check_shapes(queries: torch.Tensor, candidates: torch.Tensor) -> None:
    if queries.dim() not in (1, 2, 3):
        raise ValueError(
            f"queries must be (B, d), (B, m, d) or (d,), got shape {tuple(queries.shape)}"
        )
    if candidates.dim() not in (2, 3):
        raise ValueError(
            f"candidates must be (B, K, d) or (K, d), got shape {tuple(candidates.shape)}"
        )
    if queries.dim() == 1 and candidates.dim() != 2:
        raise ValueError(
            "a single query (d,) takes a (K, d) candidate set, got candidates of shape "
            f"{tuple(candidates.shape)}"
        )
    batch = 1 if queries.dim() == 1 else queries.shape[0]
    dim = queries.shape[-1]
    num_candidates, candidate_dim = candidates.shape[-2:]
    if batch == 0:
        raise ValueError("empty batch: queries has no prompts")
    if queries.dim() == 3 and queries.shape[1] == 0:
        raise ValueError("multi-vector queries (B, m, d) need m >= 1 targets, got m = 0")
    if dim == 0:
        raise ValueError("embeddings have dimension 0")
    if candidate_dim != dim:
        raise ValueError(f"dimension mismatch: queries have d={dim}, candidates d={candidate_dim}")
    if candidates.dim() == 3 and candidates.shape[0] != batch:
        raise ValueError(
            f"batch size mismatch: {batch} queries but candidates for {candidates.shape[0]} prompts"
        )
    if num_candidates == 0:
        raise ValueError("no candidates: K must be at least 1")


def _as_mask(target_mask: Any, queries: torch.Tensor) -> torch.Tensor | None:
    """The (B, m) bool target mask of (B, m, d) queries, checked; None stays None."""
    if target_mask is None:
        return None
    if queries.dim() != 3:
        raise ValueError("target_mask needs multi-vector queries of shape (B, m, d)")
    if isinstance(target_mask, torch.Tensor):
        mask = target_mask.detach()
    else:
        mask = torch.from_numpy(np.ascontiguousarray(np.asarray(target_mask)))
    if mask.dtype != torch.bool:
        raise ValueError(f"target_mask must be boolean, got {mask.dtype}")
    if tuple(mask.shape) != tuple(queries.shape[:2]):
        raise ValueError(
            f"target_mask must have shape (B, m) = {tuple(queries.shape[:2])}, "
            f"got {tuple(mask.shape)}"
        )
    mask = mask.to(queries.device)
    empty = (~mask.any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"target_mask leaves prompts {empty[:10]} without any target")
    return mask


def _common_device(*inputs: Any) -> torch.device:
    devices = {x.device for x in inputs if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(
            f"queries and candidates are on different devices: {sorted(map(str, devices))}"
        )
    return devices.pop() if devices else torch.device("cpu")


def _as_tensor(name: str, value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be a numpy array or torch tensor: {error}") from None
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must hold real floating-point numbers, got {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point (float32 or float64), got {tensor.dtype}")
    return tensor.to(device=device)


def _check_count(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_positive(name: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value
