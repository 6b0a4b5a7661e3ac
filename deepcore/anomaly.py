"""Anomaly scores (higher = more anomalous) of the one-class protocol (:mod:`deepcore.data.oneclass`).

* :func:`reconstruction_error`: an autoencoder's mean squared error per example, ``(B, ...) -> (B,)``.
* :func:`transformation_score`: Golan & El-Yaniv (2018)'s simple score: minus the summed log-probability
  that a classifier of ``K`` transformations gives the right one, over all ``K`` transforms of the image;
  ``log_probs (B, K, K)``, row ``[b, k]`` the log-softmax for image ``b`` under transform ``k`` -> ``(B,)``.
* :func:`dirichlet_score`: Golan & El-Yaniv's Dirichlet normality score, negated: per transform ``k`` a
  Dirichlet with concentration ``alphas[k]`` fitted (:func:`dirichlet_fit`) to the softmax vectors the classifier
  gives on the normal class's training images under transform ``k``; ``-sum_k sum_j (alphas[k, j] - 1) *
  log_probs[:, k, j]``, ``log_probs (B, K, K)`` as above, ``alphas (K, K)`` -> ``(B,)``.
* :func:`center_distance`: Deep SVDD's squared distance of features ``(B, D)`` to a centre ``(D,)``.

Log-probabilities are clipped below at :data:`LOG_P_FLOOR` (-80; ``exp(-80)`` = 1.8e-35 is still a normal float32)
in the Dirichlet fit and score, so a probability that underflowed to 0 stays finite.

Judge any of them with ``deepcore.metrics.roc_auc(scores, ~normal)``.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, polygamma

from deepcore.core import left_expand

LOG_P_FLOOR = -80.0   # log-probabilities are clipped below at this; exp(-80) = 1.8e-35 is a normal float32


def reconstruction_error(x, x_hat):
    """Mean squared error over every axis but the first: ``(B, ...)`` twice -> ``(B,)`` float32."""
    x, x_hat = jnp.asarray(x, jnp.float32), jnp.asarray(x_hat, jnp.float32)
    if x.shape != x_hat.shape:
        raise ValueError(f"reconstruction_error: expected equal shapes, got {x.shape} and {x_hat.shape}")
    return jnp.mean(jnp.square(x - x_hat).reshape(x.shape[0], -1), axis=1)


def transformation_score(log_probs):
    """``-sum_k log_probs[:, k, k]``: ``(B, K, K)`` log-probabilities -> ``(B,)``."""
    log_probs = jnp.asarray(log_probs)
    if log_probs.ndim != 3 or log_probs.shape[1] != log_probs.shape[2]:
        raise ValueError(f"transformation_score: expected log_probs (B, K, K), got {log_probs.shape}")
    return -jnp.trace(log_probs, axis1=1, axis2=2)


def center_distance(features, center):
    """``||features - center||^2`` per row: ``(B, D)``, ``(D,)`` -> ``(B,)``."""
    features = jnp.asarray(features)
    return jnp.sum(jnp.square(features - left_expand(jnp.asarray(center), features.ndim)), axis=-1)


def _inverse_digamma(y, newton_steps=5):
    """``x`` with ``digamma(x) = y``, elementwise: Minka's initialisation, then Newton steps."""
    x = jnp.where(y >= -2.22, jnp.exp(y) + 0.5, -1.0 / (y - digamma(1.0)))
    for _ in range(newton_steps):
        x = x - (digamma(x) - y) / polygamma(1, x)
    return x


def dirichlet_fit(log_p, iters: int = 1000, tol: float = 1e-7):
    """Maximum-likelihood Dirichlet concentration of probability vectors given by their logs: ``(N, K)`` -> ``(K,)``.

    Minka (2000)'s fixed point ``digamma(alpha_j) = digamma(sum(alpha)) + mean_n log_p[n, j]`` (the sufficient
    statistic), from his moment-matched start (mean vector times an approximate precision), for at most ``iters``
    steps or until no ``alpha_j`` moves by more than ``tol`` relatively. Jit-able (no Python branch on values);
    ``log_p`` below :data:`LOG_P_FLOOR` counts as the floor. The result has ``log_p``'s float dtype.
    """
    log_p = jnp.asarray(log_p)
    if log_p.ndim != 2 or log_p.shape[0] < 1 or log_p.shape[1] < 2:
        raise ValueError(f"dirichlet_fit: expected log_p (N, K) with N >= 1, K >= 2, got {log_p.shape}")
    dtype = log_p.dtype if jnp.issubdtype(log_p.dtype, jnp.floating) else jnp.float32
    log_p = jnp.maximum(log_p.astype(dtype), LOG_P_FLOOR)
    mean_log_p = jnp.mean(log_p, axis=0)
    f = jnp.maximum(jnp.mean(jnp.exp(log_p), axis=0), np.exp(LOG_P_FLOOR))   # the mean vector, (K,)
    # Minka's approximate precision; Jensen makes the denominator >= 0 (0 only if all vectors are equal)
    spread = jnp.sum(f * (jnp.log(f) - mean_log_p))
    precision = (log_p.shape[1] - 1) * -digamma(jnp.asarray(1.0, dtype)) / jnp.maximum(spread, 1e-12)
    alpha0 = f * precision

    def step(carry):
        i, alpha, _ = carry
        new = _inverse_digamma(digamma(jnp.sum(alpha)) + mean_log_p)
        return i + 1, new, jnp.max(jnp.abs(new - alpha) / new)

    def more(carry):
        i, _, change = carry
        return (i < iters) & (change > tol)

    init = (jnp.asarray(0), alpha0, jnp.asarray(jnp.inf, dtype))
    return jax.lax.while_loop(more, step, init)[1]


def dirichlet_score(log_probs, alphas):
    """Anomaly score ``-sum_k sum_j (alphas[k, j] - 1) * max(log_probs[:, k, j], LOG_P_FLOOR)``:
    ``log_probs (B, K, K)`` (row ``[b, k]`` the log-softmax for image ``b`` under transform ``k``) and ``alphas
    (K, K)`` (row ``k`` :func:`dirichlet_fit` of the normal training images' rows ``k``) -> ``(B,)``."""
    log_probs, alphas = jnp.asarray(log_probs), jnp.asarray(alphas)
    if log_probs.ndim != 3 or log_probs.shape[1] != log_probs.shape[2]:
        raise ValueError(f"dirichlet_score: expected log_probs (B, K, K), got {log_probs.shape}")
    if alphas.shape != log_probs.shape[1:]:
        raise ValueError(f"dirichlet_score: expected alphas (K, K) = {log_probs.shape[1:]}, got {alphas.shape}")
    return -jnp.einsum("bkj,kj->b", jnp.maximum(log_probs, LOG_P_FLOOR), alphas - 1)


__all__ = ["reconstruction_error", "transformation_score", "dirichlet_fit", "dirichlet_score", "center_distance",
           "LOG_P_FLOOR"]
