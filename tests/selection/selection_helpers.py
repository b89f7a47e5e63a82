"""Shared helpers for the selection tests: embeddings, a direct posterior, the oracle."""

from __future__ import annotations

import warnings

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, float32 (what the datastore hands to `select`)."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def first_copies(candidates: np.ndarray) -> np.ndarray:
    """For each row, the lowest index of a bitwise-equal row."""
    _, first, inverse = np.unique(candidates, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def posterior_variance(query, candidates, picks, lambda_) -> float:
    """σ²_X(x*) = k(x*,x*) − k_Xᵀ (K_XX + λI)⁻¹ k_X by a direct float64 solve."""
    query = np.asarray(query, dtype=np.float64)
    chosen = np.asarray(candidates, dtype=np.float64)[list(picks)]
    cross = chosen @ query
    kernel = chosen @ chosen.T + lambda_ * np.eye(len(picks))
    return float(query @ query - cross @ np.linalg.solve(kernel, cross))


def activeft_sift(query: np.ndarray, candidates: np.ndarray, n: int, lambda_: float):
    """The reference: activeft 0.1.1 `Retriever` over a flat inner-product Faiss index.

    Returns (indices (n,), posterior variances (n,)); activeft's values are minus them.
    activeft shuffles the candidates (torch's global RNG) before its argmax, so it breaks
    ties between duplicates at random: compare picks through `first_copies`.
    """
    import faiss
    import torch
    from activeft.sift import Retriever

    torch.manual_seed(0)
    index = faiss.IndexFlatIP(candidates.shape[1])
    index.add(np.ascontiguousarray(candidates, dtype=np.float32))
    retriever = Retriever(
        index, llambda=lambda_, also_query_opposite=False, device=torch.device("cpu")
    )
    with warnings.catch_warnings():  # activeft's numpy-2 DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        values, indices, _, _ = retriever.search(
            np.asarray(query, dtype=np.float32)[None], N=n, K=None
        )
    return np.asarray(indices), -np.asarray(values, dtype=np.float64)
