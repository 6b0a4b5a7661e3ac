"""Metrics: classification, ranking (ROC-AUC, average precision), regression, and nats to perplexity / bpc.

Index:

* classification: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`
* ranking / detection (binary labels, real-valued scores): :func:`roc_auc`, :func:`average_precision`
* regression: :func:`mean_squared_error`, :func:`mean_absolute_error`, :func:`r2_score`
* language models: :func:`perplexity`, :func:`bits_per_char`

Classification metrics take logits ``(..., K)`` and integer labels ``(...)``, with an optional bool
``mask`` ``(...)`` (e.g. ``(B, T)`` real tokens); means are over the kept entries, 0 if none is kept.
Labels are refused as by :mod:`deepcore.losses`: an empty batch always, a kept label outside ``[0, K)``
when concrete (``ValueError`` naming the metric); under ``jit`` such a label makes the metric NaN.
All metrics are jittable and take a ``mask`` of kept entries (e.g. padding rows of a last batch).
"""
import math

import jax.numpy as jnp

from deepcore.losses import label_guard, mae, mse, reduce_loss


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
    hits = jnp.where(valid, (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32), jnp.nan)
    return reduce_loss(hits, mask=mask, name="accuracy")


def top_k_accuracy(logits, labels, k: int, mask=None):
    """Fraction of entries whose label is among the ``k`` largest logits.

    A label counts as a hit when fewer than ``k`` classes have a strictly larger logit (ties go in
    the label's favour). logits ``(..., K)``, labels ``(...)``.
    """
    logits, labels, valid = _check("top_k_accuracy", logits, labels, mask)
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)
    rank = jnp.sum(logits > label_logit, axis=-1)
    return reduce_loss(jnp.where(valid, (rank < k).astype(jnp.float32), jnp.nan), mask=mask, name="top_k_accuracy")


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


# ----------------------------------------------------------------------------- ranking

def _binary(name, scores, labels, mask):
    """Flat float scores, float 0/1 positive and negative weights (masked entries weigh 0)."""
    scores, labels = jnp.asarray(scores, jnp.float32), jnp.asarray(labels)
    if scores.shape != labels.shape or scores.size == 0:
        raise ValueError(f"{name}: expected scores and binary labels of the same non-empty shape, got "
                         f"{tuple(scores.shape)} and {tuple(labels.shape)}")
    keep = jnp.ones(scores.shape, bool) if mask is None else jnp.asarray(mask, bool)
    positive = labels.astype(bool) if labels.dtype == bool else labels > jnp.zeros((), labels.dtype)
    pos = (keep & positive).astype(jnp.float32).ravel()
    neg = (keep & ~positive).astype(jnp.float32).ravel()
    return jnp.where(keep, scores, 0.0).ravel(), pos, neg


def _at_or_below(scores, weights):
    """For each score ``s``: (sum of ``weights`` where score < s, sum where score <= s)."""
    order = jnp.argsort(scores)
    sorted_scores = scores[order]
    cum = jnp.concatenate([jnp.zeros(1, weights.dtype), jnp.cumsum(weights[order])])
    below = cum[jnp.searchsorted(sorted_scores, scores, side="left")]
    return below, cum[jnp.searchsorted(sorted_scores, scores, side="right")]


def roc_auc(scores, labels, mask=None):
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    ``scores`` ``(...)`` real (higher = more positive, e.g. an anomaly score or a logit), ``labels``
    ``(...)`` with positives > 0 (bool or 0/1). NaN when the kept entries hold no positive or no negative.
    O(n log n) (Mann-Whitney U from sorted cumulative counts), exact with ties.
    """
    scores, pos, neg = _binary("roc_auc", scores, labels, mask)
    below, at_or_below = _at_or_below(scores, neg)
    wins = jnp.sum(pos * (below + 0.5 * (at_or_below - below)))
    return wins / (jnp.sum(pos) * jnp.sum(neg))


def average_precision(scores, labels, mask=None):
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first.

    The area under the precision-recall curve without interpolation (scikit-learn's definition); tied
    scores form one threshold. Shapes as for :func:`roc_auc`; NaN when no kept entry is positive.
    """
    scores, pos, neg = _binary("average_precision", scores, labels, mask)
    pos_below, _ = _at_or_below(scores, pos)
    all_below, _ = _at_or_below(scores, pos + neg)
    tp_at = jnp.sum(pos) - pos_below            # positives scoring >= s
    taken = jnp.sum(pos + neg) - all_below      # entries scoring >= s
    precision = tp_at / jnp.where(taken > 0, taken, 1.0)
    return jnp.sum(pos * precision) / jnp.sum(pos)


# ----------------------------------------------------------------------------- regression

def mean_squared_error(predictions, targets, mask=None):
    """Mean of ``(p - t)**2`` over kept entries; shapes ``(...)``, ``mask`` the leading dims."""
    return mse(predictions, targets, mask=mask)


def mean_absolute_error(predictions, targets, mask=None):
    """Mean of ``|p - t|`` over kept entries; shapes ``(...)``, ``mask`` the leading dims."""
    return mae(predictions, targets, mask=mask)


def r2_score(predictions, targets, mask=None):
    """Coefficient of determination ``1 - SS_res / SS_tot`` over axis 0, averaged over outputs.

    predictions and targets ``(N,)`` or ``(N, ...)`` (each trailing entry an output, as scikit-learn's
    ``uniform_average``), ``mask`` ``(N,)`` kept rows. 1 is perfect, 0 predicts the mean; an output whose
    targets are constant scores 1 if predicted exactly, else 0 (scikit-learn's convention).
    """
    p, t = jnp.asarray(predictions, jnp.float32), jnp.asarray(targets, jnp.float32)
    if p.shape != t.shape or p.ndim == 0 or p.shape[0] == 0:
        raise ValueError(f"r2_score: expected predictions and targets (N, ...) of the same shape, got "
                         f"{tuple(p.shape)} and {tuple(t.shape)}")
    w = jnp.ones(p.shape[0]) if mask is None else jnp.asarray(mask, bool).astype(jnp.float32)
    w = w.reshape((-1,) + (1,) * (p.ndim - 1))
    p, t = jnp.where(w > 0, p, 0.0), jnp.where(w > 0, t, 0.0)
    mean = jnp.sum(w * t, axis=0, keepdims=True) / jnp.sum(w)
    ss_res = jnp.sum(w * (t - p) ** 2, axis=0)
    ss_tot = jnp.sum(w * (t - mean) ** 2, axis=0)
    r2 = jnp.where(ss_tot > 0, 1.0 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1.0), jnp.where(ss_res > 0, 0.0, 1.0))
    return jnp.mean(r2)

__all__ = ["accuracy", "top_k_accuracy", "perplexity", "bits_per_char", "confusion_matrix", "roc_auc",
           "average_precision", "mean_squared_error", "mean_absolute_error", "r2_score"]
