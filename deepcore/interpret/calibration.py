"""Bias and calibration of a classifier: per-class accuracy, confusion matrix, expected calibration error.

Inputs are class probabilities ``probs (N, K)`` (e.g. ``jax.nn.softmax(logits)``, or an ensemble's mean)
and integer labels ``(N,)``. Confidence is the largest probability; the prediction is its class.
Bins split ``[0, 1]`` into ``num_bins`` equal intervals ``(lo, hi]`` (the first also holds 0).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from deepcore.metrics import confusion_matrix  # noqa: F401  (re-exported: rows true class, columns predicted)


def _check(probs, labels):
    probs, labels = jnp.asarray(probs), jnp.asarray(labels)
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"expected probs (N, K) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    return probs, labels


@functools.partial(jax.jit, static_argnames="num_classes")
def per_class_accuracy(logits_or_probs, labels, num_classes: int) -> jax.Array:
    """``(num_classes,)``: the accuracy on the examples of each true class (NaN for a class with none)."""
    cm = confusion_matrix(logits_or_probs, labels, num_classes)
    rows = cm.sum(axis=1)
    return jnp.where(rows > 0, jnp.diag(cm).astype(jnp.float32) / jnp.maximum(rows, 1).astype(jnp.float32), jnp.nan)


@functools.partial(jax.jit, static_argnames="num_bins")
def calibration_bins(probs, labels, num_bins: int = 15) -> dict:
    """Per confidence bin: ``count`` (int), mean ``confidence`` and ``accuracy`` (0 for an empty bin), and ``edges``."""
    probs, labels = _check(probs, labels)
    conf = jnp.max(probs, axis=-1).astype(jnp.float32)
    hit = (jnp.argmax(probs, axis=-1) == labels).astype(jnp.float32)
    idx = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
    count = jnp.zeros((num_bins,), jnp.int32).at[idx].add(1)
    conf_sum = jnp.zeros((num_bins,), jnp.float32).at[idx].add(conf)
    hit_sum = jnp.zeros((num_bins,), jnp.float32).at[idx].add(hit)
    n = jnp.maximum(count, 1).astype(jnp.float32)
    return {"count": count, "confidence": conf_sum / n, "accuracy": hit_sum / n,
            "edges": jnp.linspace(0.0, 1.0, num_bins + 1)}


@functools.partial(jax.jit, static_argnames="num_bins")
def expected_calibration_error(probs, labels, num_bins: int = 15) -> jax.Array:
    """ECE (Guo et al., 2017): ``sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|`` (a scalar in [0, 1])."""
    bins = calibration_bins(probs, labels, num_bins)
    n = jnp.maximum(jnp.sum(bins["count"]), 1)
    return jnp.sum(bins["count"] / n * jnp.abs(bins["accuracy"] - bins["confidence"]))


@functools.partial(jax.jit, static_argnames="num_bins")
def max_calibration_error(probs, labels, num_bins: int = 15) -> jax.Array:
    """MCE: the largest ``|accuracy - confidence|`` over non-empty bins."""
    bins = calibration_bins(probs, labels, num_bins)
    return jnp.max(jnp.where(bins["count"] > 0, jnp.abs(bins["accuracy"] - bins["confidence"]), 0.0))


@jax.jit
def negative_log_likelihood(probs, labels, eps: float = 1e-12) -> jax.Array:
    """Mean ``-log p(label)`` in nats."""
    probs, labels = _check(probs, labels)
    p = jnp.take_along_axis(probs, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return -jnp.mean(jnp.log(jnp.maximum(p.astype(jnp.float32), eps)))


def classifier_report(probs, labels, num_classes: int, num_bins: int = 15) -> dict:
    """Host-side summary: ``accuracy``, ``ece``, ``mce``, ``nll_nats``, ``per_class_accuracy`` (list), ``confusion_matrix``."""
    r = jax.device_get(_report(*_check(probs, labels), num_classes=num_classes, num_bins=num_bins))
    return {"accuracy": float(r["accuracy"]), "ece": float(r["ece"]), "mce": float(r["mce"]),
            "nll_nats": float(r["nll_nats"]), "per_class_accuracy": [float(a) for a in r["per_class_accuracy"]],
            "confusion_matrix": r["confusion_matrix"].tolist()}


@functools.partial(jax.jit, static_argnames=("num_classes", "num_bins"))
def _report(probs, labels, num_classes: int, num_bins: int) -> dict:
    return {"accuracy": jnp.mean((jnp.argmax(probs, -1) == labels).astype(jnp.float32)),
            "ece": expected_calibration_error(probs, labels, num_bins),
            "mce": max_calibration_error(probs, labels, num_bins),
            "nll_nats": negative_log_likelihood(probs, labels),
            "per_class_accuracy": per_class_accuracy(probs, labels, num_classes),
            "confusion_matrix": confusion_matrix(probs, labels, num_classes)}
