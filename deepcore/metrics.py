"""Metrics: classification, ranking (ROC-AUC, average precision), regression, and nats to perplexity / bpc.

Index:

* classification: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`
* ranking / detection (binary labels, real-valued scores): :func:`roc_auc`, :func:`average_precision`
* regression: :func:`mean_squared_error`, :func:`mean_absolute_error`, :func:`r2_score`
* language models: :func:`perplexity`, :func:`bits_per_char`
* forecasting: :func:`mase`, :func:`smape`, :func:`interval_coverage`
* text generation (Python strings, not jittable): :func:`chrf`, :func:`char_error_rate`, :func:`edit_distance`

Classification metrics take logits ``(..., K)`` and integer labels ``(...)``, with an optional bool
``mask`` ``(...)`` (e.g. ``(B, T)`` real tokens); means are over the kept entries, 0 if none is kept.
Labels are refused as by :mod:`deepcore.losses`: an empty batch always, a kept label outside ``[0, K)``
when concrete (``ValueError`` naming the metric); under ``jit`` such a label makes the metric NaN.
All metrics are jittable and take a ``mask`` of kept entries (e.g. padding rows of a last batch).
"""
import math
from collections import Counter

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


# ----------------------------------------------------------------------------- forecasting

def mase(predictions, targets, insample, period: int = 1, mask=None):
    """Mean absolute scaled error: ``mean|p - t|`` over kept entries divided by ``mean|s[i] - s[i - period]|``,
    the in-sample MAE of the seasonal-naive forecast on the training series ``s = insample`` (Hyndman & Koehler
    2006; ``period`` the season length as in the M4 competition, 1 for the plain naive scale).

    predictions and targets ``(...)`` of the same shape (e.g. ``(N, H)``: N forecast origins, horizon H);
    ``insample`` ``(T,)`` with ``T > period``. Below 1: better than that one-step in-sample forecast.
    """
    p, t = jnp.asarray(predictions, jnp.float32), jnp.asarray(targets, jnp.float32)
    s = jnp.asarray(insample, jnp.float32)
    if p.shape != t.shape:
        raise ValueError(f"mase: expected predictions and targets of the same shape, got {tuple(p.shape)} "
                         f"and {tuple(t.shape)}")
    if s.ndim != 1 or int(period) < 1 or s.shape[0] <= period:
        raise ValueError(f"mase: expected an in-sample series (T,) longer than period {period}, got "
                         f"{tuple(s.shape)}")
    scale = jnp.mean(jnp.abs(s[period:] - s[:-period]))
    return mae(p, t, mask=mask) / scale


def smape(predictions, targets, mask=None):
    """Symmetric mean absolute percentage error in percent, the M4 definition:
    ``100 * mean(2 |p - t| / (|p| + |t|))`` over kept entries, in ``[0, 200]``; an entry with ``p = t = 0``
    counts 0. predictions and targets ``(...)`` of the same shape.
    """
    p, t = jnp.asarray(predictions, jnp.float32), jnp.asarray(targets, jnp.float32)
    if p.shape != t.shape:
        raise ValueError(f"smape: expected predictions and targets of the same shape, got {tuple(p.shape)} "
                         f"and {tuple(t.shape)}")
    denom = jnp.abs(p) + jnp.abs(t)
    ratio = jnp.where(denom > 0, 2.0 * jnp.abs(p - t) / jnp.where(denom > 0, denom, 1.0), 0.0)
    return 100.0 * reduce_loss(ratio, mask=mask, name="smape")


def interval_coverage(lower, upper, targets, mask=None):
    """Fraction of kept targets inside their interval, ``lower <= t <= upper``; all three ``(...)`` alike.

    A central 80% interval (quantiles 0.1 and 0.9) of a calibrated forecaster covers about 0.8.
    """
    lo, hi, t = (jnp.asarray(a, jnp.float32) for a in (lower, upper, targets))
    if not lo.shape == hi.shape == t.shape:
        raise ValueError(f"interval_coverage: expected lower, upper and targets of one shape, got "
                         f"{tuple(lo.shape)}, {tuple(hi.shape)} and {tuple(t.shape)}")
    inside = ((lo <= t) & (t <= hi)).astype(jnp.float32)
    return reduce_loss(inside, mask=mask, name="interval_coverage")


# ----------------------------------------------------------------------------- text generation

def _ngrams(text: str, n: int) -> Counter:
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(hypotheses, references, *, order: int = 6, beta: float = 2.0) -> float:
    """Corpus chrF (Popovic 2015, as sacrebleu's default ``chrF2``), 0-100: for each character n-gram order
    ``n = 1..order`` (whitespace removed) the matched, hypothesis and reference n-gram counts are summed over
    the corpus; ``F_beta`` of that order's precision and recall; the mean over the orders that both sides
    have n-grams of (0 if none)."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"chrf: expected as many hypotheses as references (at least one), got "
                         f"{len(hypotheses)} and {len(references)}")
    stats = [[0, 0, 0] for _ in range(order)]   # per order: matches, hypothesis n-grams, reference n-grams
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = "".join(hyp.split()), "".join(ref.split())
        for n in range(1, order + 1):
            h, r = _ngrams(hyp, n), _ngrams(ref, n)
            st = stats[n - 1]
            st[0] += sum((h & r).values())
            st[1] += sum(h.values())
            st[2] += sum(r.values())
    scores = []
    for match, n_hyp, n_ref in stats:
        if n_hyp and n_ref:
            p, r = match / n_hyp, match / n_ref
            scores.append(0.0 if p + r == 0 else (1 + beta ** 2) * p * r / (beta ** 2 * p + r))
    return 100.0 * sum(scores) / len(scores) if scores else 0.0


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences: the fewest insertions, deletions and substitutions."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def char_error_rate(hypotheses, references) -> float:
    """Character error rate: total :func:`edit_distance` of each hypothesis to its reference divided by the
    total reference length (may exceed 1)."""
    hypotheses, references = list(hypotheses), list(references)
    total = sum(len(r) for r in references)
    if len(hypotheses) != len(references) or not total:
        raise ValueError(f"char_error_rate: expected as many hypotheses as references, with some reference "
                         f"characters, got {len(hypotheses)} and {len(references)} ({total} characters)")
    return sum(edit_distance(h, r) for h, r in zip(hypotheses, references)) / total


def translation_scores(outputs: dict, references, prefix: str = "") -> dict:
    """``{PREFIXchrf_NAME, PREFIXcer_NAME, PREFIXexact_NAME}`` for each ``NAME: hypotheses`` of ``outputs``:
    :func:`chrf`, :func:`char_error_rate` and the fraction of hypotheses equal to their reference."""
    references, scores = list(references), {}
    for name, hyps in outputs.items():
        hyps = list(hyps)
        scores |= {f"{prefix}chrf_{name}": chrf(hyps, references), f"{prefix}cer_{name}": char_error_rate(
            hyps, references), f"{prefix}exact_{name}": sum(map(str.__eq__, hyps, references)) / len(references)}
    return scores


__all__ = ["accuracy", "top_k_accuracy", "perplexity", "bits_per_char", "confusion_matrix", "roc_auc",
           "average_precision", "mean_squared_error", "mean_absolute_error", "r2_score", "mase", "smape",
           "interval_coverage", "chrf", "edit_distance", "char_error_rate",
           "translation_scores"]
