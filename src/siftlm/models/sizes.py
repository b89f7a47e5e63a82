"""Model sizes of the house family (kept free of heavy imports for the CLI)."""

# name -> (n_layer, n_embd, n_head, context): GPT-2 blocks, tied input/output embeddings.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 64, 2, 128),
    "small": (4, 256, 4, 256),  # 5.3M parameters with an 8k vocabulary
    "medium": (6, 512, 8, 256),  # 23.2M parameters with an 8k vocabulary
}
