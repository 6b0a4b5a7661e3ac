"""deepcore.anomaly: the scores against numpy, the Dirichlet fit against samples of known Dirichlets and a
log-likelihood written with math.lgamma, and the AUROC protocol on scores that separate perfectly."""
import math

import jax
import numpy as np
import pytest

from deepcore.anomaly import (LOG_P_FLOOR, center_distance, dirichlet_fit, dirichlet_score, reconstruction_error,
                              transformation_score)
from deepcore.metrics import roc_auc


def test_reconstruction_error_is_the_per_example_mse():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3, 5, 2)), rng.normal(size=(4, 3, 5, 2))
    want = np.array([np.mean((x[i] - y[i]) ** 2) for i in range(4)])
    np.testing.assert_allclose(np.asarray(reconstruction_error(x, y)), want, rtol=1e-5)
    with pytest.raises(ValueError, match="equal shapes"):
        reconstruction_error(x, y[:, :2])


def test_transformation_score_sums_the_right_transforms_log_probability():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 4))
    log_probs = np.asarray(jax.nn.log_softmax(logits, -1))
    want = np.array([-sum(log_probs[b, k, k] for k in range(4)) for b in range(3)])
    np.testing.assert_allclose(np.asarray(transformation_score(log_probs)), want, rtol=1e-5)
    with pytest.raises(ValueError, match="B, K, K"):
        transformation_score(log_probs[:, :3])


def test_center_distance_and_auroc_with_anomalies_as_positives():
    rng = np.random.default_rng(2)
    normal = rng.normal(size=(20, 3)) * 0.1
    far = rng.normal(size=(10, 3)) * 0.1 + 5.0
    feats = np.concatenate([normal, far])
    d = np.asarray(center_distance(feats, np.zeros(3)))
    np.testing.assert_allclose(d, (feats ** 2).sum(1), rtol=1e-5)
    is_normal = np.arange(30) < 20
    assert float(roc_auc(d, ~is_normal)) == 1.0 and float(roc_auc(-d, ~is_normal)) == 0.0


def _log_likelihood(alpha, mean_log_p):
    """Mean Dirichlet log-density of samples with sufficient statistic ``mean_log_p``, in math.lgamma."""
    return (math.lgamma(sum(alpha)) - sum(math.lgamma(a) for a in alpha)
            + sum((a - 1) * m for a, m in zip(alpha, mean_log_p)))


def _numeric_gradient(alpha, mean_log_p, h=1e-5):
    grad = []
    for j in range(len(alpha)):
        up, down = list(alpha), list(alpha)
        up[j] += h
        down[j] -= h
        grad.append((_log_likelihood(up, mean_log_p) - _log_likelihood(down, mean_log_p)) / (2 * h))
    return np.array(grad)


@pytest.mark.parametrize("alpha", [[0.3, 1.0, 2.5, 7.0], [40.0, 12.0, 3.0], [0.6] * 12])
def test_dirichlet_fit_recovers_alpha_at_a_stationary_point_of_the_likelihood(alpha):
    alpha = np.array(alpha)
    log_p = np.log(np.random.default_rng(3).dirichlet(alpha, 20000))
    with jax.enable_x64(True):
        fit = np.asarray(dirichlet_fit(log_p))
    assert fit.dtype == np.float64
    np.testing.assert_allclose(fit, alpha, rtol=0.05)          # MLE of 20000 samples: ~1-2% off
    mean_log_p = log_p.mean(0)
    assert np.max(np.abs(_numeric_gradient(list(fit), mean_log_p))) < 1e-6
    # the check can fail: 2% away from the fit the gradient is far from zero and the likelihood lower
    off = fit * np.where(np.arange(len(fit)) % 2, 1.02, 0.98)
    assert np.max(np.abs(_numeric_gradient(list(off), mean_log_p))) > 1e-3
    assert _log_likelihood(list(off), mean_log_p) < _log_likelihood(list(fit), mean_log_p)
    # float32 under jit (the recipe's case) agrees with float64
    fit32 = jax.jit(dirichlet_fit)(log_p.astype(np.float32))
    assert fit32.dtype == np.float32
    np.testing.assert_allclose(np.asarray(fit32), fit, rtol=1e-3)


def test_dirichlet_fit_stays_finite_with_a_column_of_near_zero_probabilities():
    rng = np.random.default_rng(4)
    p = rng.dirichlet([2.0, 3.0, 4.0], 500)
    p[:, 0] = rng.uniform(0, 1e-45, 500)     # float32 underflows these to 0 (log -inf) or denormals
    p[:3, 0] = 0.0
    with np.errstate(divide="ignore"):
        log_p = np.log(p).astype(np.float32)            # -inf where 0
    alpha = np.asarray(jax.jit(dirichlet_fit)(log_p))
    assert np.all(np.isfinite(alpha)) and np.all(alpha > 0)
    assert alpha[0] < 0.05 and alpha[1] < alpha[2]          # the near-zero column gets a tiny concentration
    scores = np.asarray(dirichlet_score(np.repeat(log_p[:4, None], 3, 1), np.tile(alpha, (3, 1))))
    assert np.all(np.isfinite(scores))


def test_dirichlet_score_is_minus_the_normality_score_in_numpy():
    rng = np.random.default_rng(5)
    b, k = 4, 3
    log_probs = np.array(jax.nn.log_softmax(rng.normal(size=(b, k, k)) * 3, -1))
    log_probs[1, 2, 0] = -200.0                                # below the floor: clipped
    alphas = rng.uniform(0.2, 5.0, size=(k, k))
    clipped = np.maximum(log_probs, LOG_P_FLOOR)
    want = np.array([-sum((alphas[t, j] - 1) * clipped[i, t, j] for t in range(k) for j in range(k))
                     for i in range(b)])
    np.testing.assert_allclose(np.asarray(dirichlet_score(log_probs, alphas)), want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"dirichlet_score: expected alphas \(K, K\) = \(3, 3\), got \(3, 2\)"):
        dirichlet_score(log_probs, alphas[:, :2])
    with pytest.raises(ValueError, match=r"dirichlet_fit: expected log_p \(N, K\).*got \(5,\)"):
        dirichlet_fit(np.zeros(5))
