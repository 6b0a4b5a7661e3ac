"""Metrics: accuracy, top-k accuracy, confusion matrix, and nats to perplexity / bits per character.

Classification metrics take logits ``(..., K)`` and integer labels ``(...)``, with an optional bool
``mask`` ``(...)`` (e.g. ``(B, T)`` real tokens); means are over the kept entries, 0 if none is kept.
Labels are refused as by :mod:`deepcore.losses`: an empty batch always, a kept label outside ``[0, K)``
when concrete (``ValueError`` naming the metric); under ``jit`` such a label makes the metric NaN.
"""
import math

import jax.numpy as jnp

from deepcore.losses import label_guard, reduce_loss


def _check(name, logits, labels, mask):
    """``(logits, labels, valid)``; ``valid`` marks labels in ``[0, K)`` (concrete bad labels raise)."""
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
        raise ValueError(f"{name}: expected logits (..., K) and labels (...), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return logits, labels, label_guard(name, labels, logits.shape[-1], mask)


def accuracy(logits, labels, mask=None):
    """Fraction of entries whose argmax over the last axis equals the label; logits ``(..., K)``, labels ``(...)``."""
    logits, labels, valid = _check("accuracy", logits, labels, mask)
    hits = jnp.where(valid, jnp.argmax(logits, axis=-1) == labels, jnp.nan)
    return reduce_loss(hits, mask=mask, name="accuracy")


def top_k_accuracy(logits, labels, k: int, mask=None):
    """Fraction of entries whose label is among the ``k`` largest logits.

    A label counts as a hit when fewer than ``k`` classes have a strictly larger logit (ties go in
    the label's favour). logits ``(..., K)``, labels ``(...)``.
    """
    logits, labels, valid = _check("top_k_accuracy", logits, labels, mask)
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)
    rank = jnp.sum(logits > label_logit, axis=-1)
    return reduce_loss(jnp.where(valid, rank < k, jnp.nan), mask=mask, name="top_k_accuracy")


def perplexity(mean_nats):
    """``exp(mean_nats)``: the perplexity of a mean cross entropy given in nats per token."""
    return jnp.exp(mean_nats)


def bits_per_char(mean_nats):
    """``mean_nats / ln 2``: a mean cross entropy in nats per character, in bits per character."""
    return jnp.asarray(mean_nats) / math.log(2.0)


def confusion_matrix(logits_or_preds, labels, num_classes: int, mask=None):
    """``(num_classes, num_classes)`` int32 counts; row = true label, column = predicted class.

    ``logits_or_preds`` is logits ``(..., K)`` (argmax taken) or integer predictions ``(...)``
    with the shape of ``labels``. Entries with ``mask`` False are not counted; a kept label outside
    ``[0, num_classes)`` raises when concrete and is not counted under ``jit`` (nor are such predictions).
    """
    preds, labels = jnp.asarray(logits_or_preds), jnp.asarray(labels)
    label_guard("confusion_matrix", labels, num_classes, mask)
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
