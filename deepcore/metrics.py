"""Metrics: accuracy, top-k accuracy, confusion matrix, and nats to perplexity / bits per character.

Classification metrics take logits ``(..., K)`` and integer labels ``(...)``, with an optional bool
``mask`` ``(...)`` (e.g. ``(B, T)`` real tokens); means are over the kept entries, 0 if none is kept.
"""
import math

import jax.numpy as jnp

from deepcore.losses import reduce_loss


def _check(logits, labels):
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
        raise ValueError(f"expected logits (..., K) and labels (...), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return logits, labels


def accuracy(logits, labels, mask=None):
    """Fraction of entries whose argmax over the last axis equals the label; logits ``(..., K)``, labels ``(...)``."""
    logits, labels = _check(logits, labels)
    hits = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return reduce_loss(hits, mask=mask)


def top_k_accuracy(logits, labels, k: int, mask=None):
    """Fraction of entries whose label is among the ``k`` largest logits.

    A label counts as a hit when fewer than ``k`` classes have a strictly larger logit (ties go in
    the label's favour). logits ``(..., K)``, labels ``(...)``.
    """
    logits, labels = _check(logits, labels)
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)
    rank = jnp.sum(logits > label_logit, axis=-1)
    return reduce_loss((rank < k).astype(jnp.float32), mask=mask)


def perplexity(mean_nats):
    """``exp(mean_nats)``: the perplexity of a mean cross entropy given in nats per token."""
    return jnp.exp(mean_nats)


def bits_per_char(mean_nats):
    """``mean_nats / ln 2``: a mean cross entropy in nats per character, in bits per character."""
    return jnp.asarray(mean_nats) / math.log(2.0)


def confusion_matrix(logits_or_preds, labels, num_classes: int, mask=None):
    """``(num_classes, num_classes)`` int32 counts; row = true label, column = predicted class.

    ``logits_or_preds`` is logits ``(..., K)`` (argmax taken) or integer predictions ``(...)``
    with the shape of ``labels``. Entries with ``mask`` False or out-of-range ids are not counted.
    """
    preds, labels = jnp.asarray(logits_or_preds), jnp.asarray(labels)
    if preds.ndim == labels.ndim + 1:
        preds = jnp.argmax(preds, axis=-1)
    if preds.shape != labels.shape:
        raise ValueError(f"expected logits (..., K) or predictions (...) matching labels {tuple(labels.shape)}, "
                         f"got {tuple(preds.shape)}")
    ones = jnp.ones(labels.shape, jnp.int32) if mask is None else jnp.asarray(mask).astype(jnp.int32)
    valid = (labels >= 0) & (labels < num_classes) & (preds >= 0) & (preds < num_classes)
    ones = jnp.where(valid, ones, 0)
    cm = jnp.zeros((num_classes, num_classes), jnp.int32)
    return cm.at[jnp.clip(labels, 0, num_classes - 1).ravel(), jnp.clip(preds, 0, num_classes - 1).ravel()].add(
        ones.ravel())
