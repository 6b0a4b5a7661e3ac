"""Anomaly scores (higher = more anomalous) of the one-class protocol (:mod:`deepcore.data.oneclass`).

* :func:`reconstruction_error`: an autoencoder's mean squared error per example, ``(B, ...) -> (B,)``.
* :func:`transformation_score`: Golan & El-Yaniv (2018)'s simple score: minus the summed log-probability
  that a classifier of ``K`` transformations gives the right one, over all ``K`` transforms of the image;
  ``log_probs (B, K, K)``, row ``[b, k]`` the log-softmax for image ``b`` under transform ``k`` -> ``(B,)``.
* :func:`center_distance`: Deep SVDD's squared distance of features ``(B, D)`` to a centre ``(D,)``.

Judge any of them with ``deepcore.metrics.roc_auc(scores, ~normal)``.
"""
import jax.numpy as jnp

from deepcore.core import left_expand


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


__all__ = ["reconstruction_error", "transformation_score", "center_distance"]
