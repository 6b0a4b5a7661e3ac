"""Losses: optax's elementwise losses plus per-example weights, masks and one reduction rule.

Every loss takes ``weights=None``, ``mask=None`` and ``reduction="mean"``:

* ``weights`` (float) and ``mask`` (bool) have the leading shape of the loss, e.g. ``(B,)`` or
  ``(B, T)`` for a language model's ``(B, T, K)`` logits; they are broadcast over any trailing
  dims (``(B,)`` weights on an ``(B, D)`` regression target weight each example's D errors).
  Both may be given; they multiply. Masked-out entries contribute nothing to the value or the
  gradient, even where their inputs are ``inf`` or ``nan`` (padding tokens); use ``mask``, not
  zero weights, for such entries.
* ``reduction="mean"``: the weighted mean ``sum(w * loss) / sum(w)`` over the kept entries
  (``w`` is weights times mask, 1 where neither is given), so a mask averages over the kept
  examples only; 0 when nothing is kept (not NaN, and with a zero gradient).
  ``"sum"``: ``sum(w * loss)``. ``"none"``: ``w * loss`` unreduced, the loss's own shape.

Lower-precision logits (bfloat16, float16) are upcast to float32 before the loss.

Refused inputs (``ValueError``, one line naming the function): an empty batch (always: shapes are static),
and an integer label outside ``[0, K)`` among the kept entries when the labels are concrete arrays (an
eager call). Under ``jit`` the labels are traced and cannot raise: a kept out-of-range label makes its
entry's loss NaN instead (never a silently wrong finite value), which the training loop's guard reports.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.core import left_expand

REDUCTIONS = ("mean", "sum", "none")


def _float(x):
    """``x`` as a floating array, upcasting anything narrower than float32."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating) or jnp.finfo(x.dtype).bits < 32:
        return x.astype(jnp.float32)
    return x


def _broadcast(w, shape, what):
    """``w`` with leading shape ``w.shape`` broadcast to ``shape`` by appending trailing axes."""
    w = jnp.asarray(w)
    if w.ndim > len(shape) or tuple(shape[: w.ndim]) != tuple(w.shape):
        raise ValueError(f"{what} must match the leading dims of the per-example loss {tuple(shape)}, "
                         f"got {tuple(w.shape)}")
    return jnp.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape)


def _zero_masked(x, mask):
    """``x`` with masked-out entries set to 0, so their inf/nan cannot reach the gradient either."""
    if mask is None:
        return x
    return jnp.where(_broadcast(mask, x.shape, "mask"), x, jnp.zeros((), x.dtype))


def reduce_loss(loss, weights=None, mask=None, reduction: str = "mean", *, name: str = "reduce_loss"):
    """Weight, mask and reduce an unreduced ``loss`` (any shape) as described in the module doc.

    ``name`` (the calling loss or metric) starts the message of a refused empty batch."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    loss = jnp.asarray(loss)
    if loss.size == 0:
        raise ValueError(f"{name}: expected a non-empty batch, got a per-example loss of shape {tuple(loss.shape)}")
    w = None
    if weights is not None:
        w = _broadcast(weights, loss.shape, "weights").astype(loss.dtype)
    if mask is not None:
        m = _broadcast(mask, loss.shape, "mask")
        if m.dtype != jnp.bool_:
            raise ValueError(f"mask must be boolean, got {m.dtype}")
        w = m.astype(loss.dtype) if w is None else jnp.where(m, w, 0)
    if w is None:
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda a: a}[reduction](loss)
    weighted = jnp.where(w != 0, loss, 0) * w  # masked-out inf/nan stay out
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total
    count = jnp.sum(w)
    return jnp.where(count != 0, total / jnp.where(count != 0, count, 1), 0)


# ----------------------------------------------------------------------------- regression

def mse(predictions, targets, *, weights=None, mask=None, reduction: str = "mean"):
    """Squared error ``(p - t)**2``; predictions and targets ``(...)`` of the same shape."""
    predictions = _zero_masked(_float(predictions), mask)
    return reduce_loss(optax.losses.squared_error(predictions, _float(targets)), weights, mask, reduction, name="mse")


def mae(predictions, targets, *, weights=None, mask=None, reduction: str = "mean"):
    """Absolute error ``|p - t|``; predictions and targets ``(...)`` of the same shape."""
    predictions = _zero_masked(_float(predictions), mask)
    return reduce_loss(jnp.abs(predictions - _float(targets)), weights, mask, reduction, name="mae")


def huber(predictions, targets, *, delta: float = 1.0, weights=None, mask=None, reduction: str = "mean"):
    """Huber loss: ``0.5 e**2`` for ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``; shapes ``(...)``."""
    predictions = _zero_masked(_float(predictions), mask)
    err = optax.losses.huber_loss(predictions, _float(targets), delta=delta)
    return reduce_loss(err, weights, mask, reduction, name="huber")


def pinball(predictions, targets, quantiles, *, weights=None, mask=None, reduction: str = "mean"):
    """Quantile (pinball) loss, the mean over the quantile levels: ``q (t - p)`` where ``t >= p``, else
    ``(1 - q) (p - t)``; minimised by the ``q``-quantile of the target's distribution (``q = 0.5``: half the MAE).

    predictions ``(..., Q)`` (one per level), targets ``(...)``, quantiles ``(Q,)`` in ``(0, 1)``; the unreduced
    loss is ``(...)``.
    """
    predictions, targets = _float(predictions), _float(targets)
    q = jnp.asarray(quantiles, predictions.dtype)
    if q.ndim != 1 or predictions.shape != targets.shape + q.shape:
        raise ValueError(f"pinball: expected predictions (..., Q) = targets {tuple(targets.shape)} + quantiles "
                         f"{tuple(q.shape)}, got {tuple(predictions.shape)}")
    if _concrete(q) and not bool(jnp.all((q > 0) & (q < 1))):
        raise ValueError(f"pinball: expected quantiles in (0, 1), got {np.asarray(q).tolist()}")
    err = targets[..., None] - _zero_masked(predictions, mask)
    q = left_expand(q, err.ndim)
    loss = jnp.mean(jnp.maximum(q * err, (q - 1) * err), axis=-1)
    return reduce_loss(loss, weights, mask, reduction, name="pinball")


# ----------------------------------------------------------------------------- classification

def _check_logits(logits, labels, onehot):
    want = tuple(logits.shape) if onehot else tuple(logits.shape[:-1])
    if logits.ndim < 1 or tuple(labels.shape) != want:
        lab = "(..., K)" if onehot else "(...)"
        raise ValueError(f"expected logits (..., K) and labels {lab} with logits {tuple(logits.shape)}, "
                         f"got labels {tuple(labels.shape)}")


def _concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def label_guard(name: str, labels, num_classes: int, mask=None):
    """``valid``: bool ``labels.shape``, True where a label lies in ``[0, num_classes)``.

    Concrete (non-traced) labels: raise ``ValueError`` naming ``name``, the range and the first kept
    out-of-range label and its index (``mask`` False entries, e.g. padding, may hold anything)."""
    labels = jnp.asarray(labels)
    valid = (labels >= 0) & (labels < num_classes)
    if _concrete(labels, mask):
        bad = ~np.asarray(valid)
        if mask is not None:
            bad &= np.asarray(_broadcast(mask, bad.shape, "mask"))
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            got = int(np.asarray(labels)[at])
            raise ValueError(f"{name}: expected integer labels in [0, {num_classes}), got {got} at index {at}")
    return valid


def softmax_cross_entropy(logits, labels, *, label_smoothing: float = 0.0, weights=None, mask=None,
                          reduction: str = "mean"):
    """Cross entropy in nats of ``softmax(logits)`` against integer ``labels``.

    logits ``(..., K)``, labels ``(...)`` ints in ``[0, K)``; the unreduced loss is ``(...)``.
    ``label_smoothing=a`` trains against ``(1 - a) * onehot + a / K``. For a language model pass
    logits ``(B, T, K)``, labels ``(B, T)`` and a ``(B, T)`` mask of real (non-padding) tokens.
    """
    logits, labels = _float(logits), jnp.asarray(labels)
    _check_logits(logits, labels, onehot=False)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}; use softmax_cross_entropy_onehot")
    valid = label_guard("softmax_cross_entropy", labels, logits.shape[-1], mask)
    logits = _zero_masked(logits, mask)
    if label_smoothing:
        onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        loss = optax.losses.softmax_cross_entropy(logits, optax.smooth_labels(onehot, label_smoothing))
    else:
        loss = optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)
    loss = jnp.where(valid, loss, jnp.nan)
    return reduce_loss(loss, weights, mask, reduction, name="softmax_cross_entropy")


def softmax_cross_entropy_onehot(logits, labels, *, label_smoothing: float = 0.0, weights=None, mask=None,
                                 reduction: str = "mean"):
    """Cross entropy in nats of ``softmax(logits)`` against one-hot or soft ``labels``.

    logits and labels ``(..., K)`` (each labels row a distribution); the unreduced loss is ``(...)``.
    ``label_smoothing=a`` replaces labels by ``(1 - a) * labels + a / K``.
    """
    logits, labels = _float(logits), _float(labels)
    _check_logits(logits, labels, onehot=True)
    if label_smoothing:
        labels = optax.smooth_labels(labels, label_smoothing)
    loss = optax.losses.softmax_cross_entropy(_zero_masked(logits, mask), labels)
    return reduce_loss(loss, weights, mask, reduction, name="softmax_cross_entropy_onehot")


def binary_cross_entropy_with_logits(logits, labels, *, weights=None, mask=None, reduction: str = "mean"):
    """Binary cross entropy in nats of ``sigmoid(logits)`` against labels in ``[0, 1]``.

    logits and labels ``(...)`` of the same shape (multi-label ``(B, C)`` works elementwise).
    """
    logits, labels = _float(logits), _float(labels)
    if logits.shape != labels.shape:
        raise ValueError(f"expected logits and labels of the same shape, got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    loss = optax.losses.sigmoid_binary_cross_entropy(_zero_masked(logits, mask), labels)
    return reduce_loss(loss, weights, mask, reduction, name="binary_cross_entropy_with_logits")


def kl_divergence(log_predictions, targets, *, weights=None, mask=None, reduction: str = "mean"):
    """``KL(targets || predictions) = sum_k q_k (log q_k - log p_k)`` in nats.

    ``log_predictions`` ``(..., K)`` are log-probabilities ``log p`` (e.g. ``log_softmax(logits)``),
    ``targets`` ``(..., K)`` probabilities ``q`` (zeros allowed); the unreduced loss is ``(...)``.
    This is the direction distillation minimises: the student ``p`` covers the teacher ``q``.
    """
    log_predictions, targets = _float(log_predictions), _float(targets)
    if log_predictions.shape != targets.shape:
        raise ValueError(f"expected log_predictions and targets (..., K) of the same shape, got "
                         f"{tuple(log_predictions.shape)} and {tuple(targets.shape)}")
    loss = optax.losses.kl_divergence(_zero_masked(log_predictions, mask), targets)
    return reduce_loss(loss, weights, mask, reduction, name="kl_divergence")

__all__ = ["REDUCTIONS", "reduce_loss", "mse", "mae", "huber", "pinball", "label_guard", "softmax_cross_entropy",
           "softmax_cross_entropy_onehot", "binary_cross_entropy_with_logits", "kl_divergence"]
