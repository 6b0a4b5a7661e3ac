"""Attributions: exact integrated gradients on a linear model, completeness on a small net, saliency vs finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.interpret import (attribution_map, completeness_gap, gradient_x_input, integrated_gradients, saliency,
                                save_overlays, smoothgrad, steps_for_tolerance)
from deepcore.layers import Conv, Dense, Flatten, Relu, Tanh, serial

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("interpret_test_attribution")

B, D, K = 3, 6, 4


def linear():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(D, K)), rng.normal(size=(K,))
    return w, b, (lambda x: x @ w + b[None, :])


def test_integrated_gradients_on_a_linear_model_is_weights_times_displacement():
    with jax.enable_x64(True):
        w, b, fn = linear()
        rng = np.random.default_rng(1)
        x, base = rng.normal(size=(B, D)), rng.normal(size=(B, D))
        target = np.array([0, 3, 1])
        for steps in (1, 7):  # the gradient is constant, so any quadrature is exact
            ig = integrated_gradients(fn, x, target, baseline=base, steps=steps, chunk=3)
            np.testing.assert_allclose(ig, w[:, target].T * (x - base), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(completeness_gap(fn, x, ig, target, baseline=base), 0.0, atol=1e-12)
        # predicted class by default; a scalar target broadcasts
        pred = np.argmax(fn(x), -1)
        np.testing.assert_allclose(integrated_gradients(fn, x), w[:, pred].T * x, rtol=1e-12)
        np.testing.assert_allclose(integrated_gradients(fn, x, 2), w[:, 2].T * x + 0 * x, rtol=1e-12)
        np.testing.assert_allclose(gradient_x_input(fn, x, target), w[:, target].T * x, rtol=1e-12)


@pytest.fixture(scope="session")
def net():
    model = serial(Dense(16), Tanh, Dense(16), Relu, Dense(K))
    _, params, state = model.init(jax.random.PRNGKey(0), (B, D))
    fn = lambda x: model.apply(params, state, x)[0]
    x = jax.random.normal(jax.random.PRNGKey(1), (B, D))
    return fn, x


def test_saliency_matches_finite_differences():
    with jax.enable_x64(True):  # a smooth float64 net, so central differences are accurate to ~1e-9
        model = serial(Dense(16), Tanh, Dense(K))
        _, params, state = model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((B, D), jnp.float64))
        fn = lambda x: model.apply(params, state, x)[0]
        x = np.random.default_rng(2).normal(size=(B, D))
        target = np.array([1, 0, 2])
        g = np.asarray(saliency(fn, x, target))
        assert g.shape == x.shape and g.dtype == np.float64
        eps, rows = 1e-5, np.arange(B)
        for i in range(D):
            e = np.zeros((B, D))
            e[:, i] = eps
            fd = (np.asarray(fn(x + e))[rows, target] - np.asarray(fn(x - e))[rows, target]) / (2 * eps)
            np.testing.assert_allclose(g[:, i], fd, rtol=1e-7, atol=1e-9)


def test_integrated_gradients_completeness_on_a_nonlinear_net_and_steps_needed(net):
    fn, x = net
    found = steps_for_tolerance(fn, x, rtol=0.01, atol=1e-4, candidates=(16, 128))
    assert found["steps"] is not None, found
    ig = integrated_gradients(fn, x, steps=found["steps"])
    gap = np.abs(completeness_gap(fn, x, ig))
    span = np.abs(fn(x)[np.arange(B), np.argmax(fn(x), -1)] - fn(jnp.zeros_like(x))[np.arange(B), np.argmax(fn(x), -1)])
    assert np.all(gap <= 1e-4 + 0.01 * span), (gap, span)
    # the gap shrinks as the step count grows (trapezoid error ~ 1/steps^2)
    tried = found["tried"]
    assert list(tried) == sorted(tried)
    coarse = np.abs(completeness_gap(fn, x, integrated_gradients(fn, x, steps=1))).max()
    assert coarse > np.max(gap)
    # chunked evaluation gives the same attributions
    np.testing.assert_allclose(integrated_gradients(fn, x, steps=9, chunk=4), integrated_gradients(fn, x, steps=9),
                               rtol=1e-5, atol=1e-6)


def test_smoothgrad_without_noise_is_saliency_and_averages_noisy_gradients(net):
    fn, x = net
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(smoothgrad(fn, x, key=key, noise=0.0, num_samples=3), saliency(fn, x), rtol=1e-6)
    sg = smoothgrad(fn, x, 1, key=key, num_samples=4)
    keys = jax.random.split(key, 4)
    sigma = 0.15 * (x.max(1, keepdims=True) - x.min(1, keepdims=True))
    manual = np.mean([saliency(fn, x + sigma * jax.random.normal(k, x.shape), 1) for k in keys], axis=0)
    np.testing.assert_allclose(sg, manual, rtol=1e-5, atol=1e-6)
    sq = smoothgrad(fn, x, 1, key=key, num_samples=4, squared=True)
    assert np.all(np.asarray(sq) >= 0)


def test_image_model_attributions_and_overlay_picture(tmp_path):
    model = serial(Conv(4, (3, 3)), Relu, Flatten(), Dense(3))
    _, params, state = model.init(jax.random.PRNGKey(0), (2, 8, 8, 1))
    fn = lambda x: model.apply(params, state, x)[0]
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 8, 8, 1))
    s = saliency(fn, x)
    assert s.shape == x.shape
    m = attribution_map(s)
    assert m.shape == (2, 8, 8) and np.all(np.asarray(m) >= 0)
    with pytest.raises(ValueError, match="target"):
        saliency(fn, x, np.array([0, 1, 2]))
    path = save_overlays(str(tmp_path / "saliency.png"), np.asarray(x * 255).astype(np.uint8), s, titles=["a", "b"])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
