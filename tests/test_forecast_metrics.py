"""Forecast scores (MASE, sMAPE, interval coverage) and the pinball loss against hand and numpy computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import losses, metrics


def test_mase_by_hand():
    insample = np.array([1.0, 3.0, 2.0, 5.0])      # |diffs| 2, 1, 3 -> scale 2; period 2: |1|, |2| -> scale 1.5
    pred, truth = np.array([[2.0, 4.0]]), np.array([[3.0, 1.0]])   # MAE (1 + 3) / 2 = 2
    assert float(metrics.mase(pred, truth, insample)) == pytest.approx(1.0)
    assert float(metrics.mase(pred, truth, insample, period=2)) == pytest.approx(2 / 1.5)
    mask = np.array([True])
    assert float(metrics.mase(pred, truth, insample, mask=mask)) == pytest.approx(1.0)


def test_mase_matches_numpy_on_random_forecasts():
    rng = np.random.default_rng(0)
    s, pred, truth = rng.normal(size=50).cumsum(), rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    want = np.abs(pred - truth).mean() / np.abs(s[12:] - s[:-12]).mean()
    assert float(metrics.mase(pred, truth, s, 12)) == pytest.approx(want, rel=1e-5)


def test_mase_refuses_short_insample_and_shape_mismatch():
    with pytest.raises(ValueError, match="mase: expected an in-sample series"):
        metrics.mase(np.ones(3), np.ones(3), np.ones(4), period=4)
    with pytest.raises(ValueError, match="same shape"):
        metrics.mase(np.ones(3), np.ones(4), np.arange(9.0))


def test_smape_by_hand_and_both_zero():
    pred, truth = np.array([110.0, 0.0, 50.0]), np.array([90.0, 0.0, 150.0])
    # 2*20/200 = 0.2, both zero -> 0, 2*100/200 = 1.0 -> mean 0.4 -> 40 %
    assert float(metrics.smape(pred, truth)) == pytest.approx(40.0)
    assert float(metrics.smape(pred, truth, mask=np.array([True, False, False]))) == pytest.approx(20.0)
    assert float(metrics.smape(np.array([1.0]), np.array([-1.0]))) == pytest.approx(200.0)


def test_smape_matches_numpy():
    rng = np.random.default_rng(1)
    pred, truth = rng.uniform(1, 5, (4, 6)), rng.uniform(1, 5, (4, 6))
    want = 100 * np.mean(2 * np.abs(pred - truth) / (np.abs(pred) + np.abs(truth)))
    assert float(metrics.smape(pred, truth)) == pytest.approx(want, rel=1e-5)


def test_interval_coverage_by_hand():
    lo, hi, t = np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 3.0]), np.array([1.0, 3.0, 2.0, 1.0])
    assert float(metrics.interval_coverage(lo, hi, t)) == pytest.approx(0.5)   # ends count as inside
    with pytest.raises(ValueError, match="interval_coverage"):
        metrics.interval_coverage(lo, hi[:3], t)


def _pinball_numpy(pred, y, q):
    e = y[..., None] - pred
    return np.mean(np.maximum(q * e, (q - 1) * e), axis=-1)


def test_pinball_matches_numpy():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        pred, y, q = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4)), np.array([0.1, 0.5, 0.9])
        want = _pinball_numpy(pred, y, q)
        np.testing.assert_allclose(losses.pinball(pred, y, q, reduction="none"), want, rtol=1e-12)
        np.testing.assert_allclose(losses.pinball(pred, y, q), want.mean(), rtol=1e-12)
        mask = np.array([True, False, True, True, False])
        np.testing.assert_allclose(losses.pinball(pred, y, q, mask=mask), want[mask].mean(), rtol=1e-12)


def test_pinball_by_hand_and_median_is_half_mae():
    # target 1, forecast 3 (over by 2): q=0.1 -> 0.9*2 = 1.8; forecast -1 (under by 2): q=0.1 -> 0.1*2 = 0.2
    assert float(losses.pinball(jnp.array([[3.0]]), jnp.array([1.0]), [0.1])) == pytest.approx(1.8)
    assert float(losses.pinball(jnp.array([[-1.0]]), jnp.array([1.0]), [0.1])) == pytest.approx(0.2)
    p, t = jnp.array([0.5, 2.0, -1.0]), jnp.array([1.0, 0.0, 1.0])
    assert float(losses.pinball(p[:, None], t, [0.5])) == pytest.approx(0.5 * float(losses.mae(p, t)))


def test_pinball_minimised_by_the_quantile():
    """Gradient descent on a constant forecast converges to the empirical q-quantile of the targets."""
    y = jnp.asarray(np.random.default_rng(3).normal(size=2001), jnp.float32)
    c = jnp.zeros((1, 2))
    grad = jax.jit(jax.grad(lambda c: losses.pinball(jnp.broadcast_to(c, (2001, 2)), y, [0.1, 0.9])))
    for _ in range(4000):
        c = c - 0.02 * grad(c)
    np.testing.assert_allclose(np.asarray(c)[0], np.quantile(np.asarray(y), [0.1, 0.9]), atol=0.03)


def test_pinball_refuses_bad_levels_and_shapes():
    with pytest.raises(ValueError, match=r"pinball: expected quantiles in \(0, 1\)"):
        losses.pinball(jnp.zeros((2, 2)), jnp.zeros(2), [0.5, 1.0])
    with pytest.raises(ValueError, match="pinball: expected predictions"):
        losses.pinball(jnp.zeros((2, 3)), jnp.zeros(2), [0.1, 0.9])
