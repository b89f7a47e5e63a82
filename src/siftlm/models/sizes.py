"""Model sizes of the house family (kept free of heavy imports for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSize:
    """A GPT-2 shape (tied input/output embeddings); names as GPT-2's config fields."""

    n_layer: int  # transformer blocks
    n_embd: int  # width of the residual stream
    n_head: int  # attention heads (n_embd / n_head per head)
    context: int  # positions (n_positions)


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(n_layer=2, n_embd=64, n_head=2, context=128),
    "small": ModelSize(n_layer=4, n_embd=256, n_head=4, context=256),  # 5.3M parameters, 8k vocab
    "medium": ModelSize(n_layer=6, n_embd=512, n_head=8, context=256),  # 23.2M parameters, 8k vocab
}
