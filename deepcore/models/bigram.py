"""A count-based bigram model with add-k smoothing: the baseline a character language model must beat.

    log_probs = fit_bigram(train_ids, vocab_size, k=1.0)   # (V, V) float64: log P(next = j | previous = i)
    nats = bigram_nats(log_probs, val_ids)                  # mean nats per predicted token

``P(j | i) = (count(i, j) + k) / (count(i) + k V)`` with the counts taken over adjacent pairs of the
training ids; every token of the evaluated sequence after the first is predicted from the one before it.
Plain numpy in float64: counting needs no gradient, and the figure should be exact.
"""
from __future__ import annotations

import math

import numpy as np


def _ids(ids, vocab_size: int, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{what}: expected a 1-D integer id sequence, got {ids.dtype} {tuple(ids.shape)}")
    if ids.size < 2:
        raise ValueError(f"{what}: need at least 2 ids (one pair), got {ids.size}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"{what}: ids must lie in [0, {vocab_size}), got range [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def fit_bigram(ids, vocab_size: int, k: float = 1.0) -> np.ndarray:
    """``(V, V)`` float64 log-probabilities ``log P(next = j | previous = i)`` from the pairs of ``ids (N,)``.

    ``k > 0`` is added to every pair count (add-k / Lidstone smoothing), so unseen pairs keep a
    probability and each row sums to 1.
    """
    if not k > 0:
        raise ValueError(f"fit_bigram: the smoothing k must be > 0, got {k}")
    ids = _ids(ids, vocab_size, "fit_bigram")
    counts = np.bincount(ids[:-1] * vocab_size + ids[1:], minlength=vocab_size * vocab_size)
    counts = counts.reshape(vocab_size, vocab_size).astype(np.float64)
    return np.log(counts + k) - np.log(counts.sum(axis=1, keepdims=True) + k * vocab_size)


def bigram_nats(log_probs, ids) -> float:
    """Mean negative log-likelihood in nats of ``ids[1:]`` given ``ids[:-1]`` under ``log_probs (V, V)``."""
    log_probs = np.asarray(log_probs)
    ids = _ids(ids, log_probs.shape[0], "bigram_nats")
    return float(-np.mean(log_probs[ids[:-1], ids[1:]]))


def bigram_bits(log_probs, ids) -> float:
    """:func:`bigram_nats` in bits per token."""
    return bigram_nats(log_probs, ids) / math.log(2.0)


def bigram_baseline(train_ids, val_ids, vocab_size: int, k: float = 1.0) -> dict:
    """The add-k bigram model fit on ``train_ids``, scored on every id of ``val_ids`` after the first:
    ``{"bigram_val_nats_per_char", "bigram_val_bits_per_char"}``."""
    nats = bigram_nats(fit_bigram(train_ids, vocab_size, k), val_ids)
    return {"bigram_val_nats_per_char": nats, "bigram_val_bits_per_char": nats / math.log(2.0)}
