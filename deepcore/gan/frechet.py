"""Fréchet distance between two Gaussians fitted to feature sets (FID when the features are Inception's).

    mu1, cov1 = feature_stats(features_real)      # (N, D) -> (D,), (D, D), float64
    d = frechet_distance(mu1, cov1, *feature_stats(features_fake))

``d = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))``. The trace of the square root is computed
stably as ``sum sqrt(eig(S C2 S))`` with ``S = C1^(1/2)`` from a symmetric eigendecomposition: ``S C2 S`` is
symmetric positive semi-definite and similar to ``C1 C2``, so no complex square roots or near-singular
products appear (tiny negative eigenvalues from rounding are clipped to 0). Runs in float64 NumPy.
"""
from __future__ import annotations

import numpy as np


def feature_stats(features) -> tuple:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, as ``np.cov``) of ``features (N, D)``, in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_stats: expected features of shape (N >= 2, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def sqrtm_psd(c) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    c = np.asarray(c, np.float64)
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)`` (``mu (D,)``, ``cov (D, D)``)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"frechet_distance: expected mu (D,) and cov (D, D) for both, got "
                         f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}")
    s = sqrtm_psd(cov1)
    m = s @ cov2 @ s
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    d = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt
    return float(max(d, 0.0))
