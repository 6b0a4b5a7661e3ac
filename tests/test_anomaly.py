"""deepcore.anomaly: the scores against numpy, and the AUROC protocol on scores that separate perfectly."""
import jax
import numpy as np
import pytest

from deepcore.anomaly import center_distance, reconstruction_error, transformation_score
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
