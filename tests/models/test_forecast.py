"""Forecast baselines against hand computations, and the neural forecasters' shapes and invariances."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.models import forecast_baselines as base
from deepcore.models.forecast import KINDS, causal_conv_block, forecaster, patches

X = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0]])


def test_naive_and_seasonal_naive_by_hand():
    np.testing.assert_array_equal(base.naive(X, 3), [[5, 5, 5], [50, 50, 50]])
    # period 2: steps h = 0, 1, 2, 3 read x[3], x[4], x[3], x[4]
    np.testing.assert_array_equal(base.seasonal_naive(X, 4, 2), [[4, 5, 4, 5], [40, 50, 40, 50]])
    with pytest.raises(ValueError, match=r"seasonal_naive: expected a period in \[1, L = 5\], got 6"):
        base.seasonal_naive(X, 2, 6)


def test_linear_ar_recovers_an_exact_ar_process():
    """y_t = 0.6 y_{t-1} - 0.3 y_{t-2} + 2 (no noise): the one-step fit gives those coefficients exactly."""
    s = [1.0, 3.0]
    for _ in range(60):
        s.append(0.6 * s[-1] - 0.3 * s[-2] + 2.0 + 0.01 * np.sin(len(s) ** 2))   # a little excitation
    s = np.array(s)
    x = np.stack([s[:-2], s[1:-1]], 1)
    y = s[2:, None] - 0.01 * np.sin(np.arange(2, len(s)) ** 2)[:, None]
    coef = base.fit_linear_ar(x, y)
    np.testing.assert_allclose(coef[:, 0], [-0.3, 0.6, 2.0], atol=1e-9)
    np.testing.assert_allclose(base.linear_ar(coef, x), y, atol=1e-9)


def test_linear_ar_matches_numpy_lstsq_and_relative_follows_a_trend():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 3))
    want = np.linalg.lstsq(np.c_[x, np.ones(40)], y, rcond=None)[0]
    np.testing.assert_allclose(base.fit_linear_ar(x, y), want, atol=1e-12)
    ramp = np.arange(60.0)                            # a trend: the relative fit extrapolates it past the range
    xs = np.stack([ramp[i:i + 5] for i in range(40)])
    ys = np.stack([ramp[i + 5:i + 7] for i in range(40)])
    rel = base.fit_linear_ar(xs, ys, relative=True)
    np.testing.assert_allclose(base.linear_ar(rel, xs + 1000.0, relative=True), ys + 1000.0, atol=1e-8)


def test_baselines_gathers_every_baseline_and_leaves_out_a_season_longer_than_the_window():
    rng = np.random.default_rng(3)
    train = {"x": rng.normal(size=(40, 6)), "y": rng.normal(size=(40, 3))}
    x = rng.normal(size=(5, 6))
    got = base.baselines(train, x, 3, 4)
    assert list(got) == ["naive", "seasonal_naive", "linear_ar", "linear_ar_relative"]
    np.testing.assert_array_equal(got["seasonal_naive"], base.seasonal_naive(x, 3, 4))
    np.testing.assert_array_equal(got["linear_ar_relative"],
                                  base.linear_ar(base.fit_linear_ar(train["x"], train["y"], relative=True), x,
                                                 relative=True))
    np.testing.assert_array_equal(got["naive"], np.repeat(x[:, -1:], 3, axis=1))
    assert "seasonal_naive" not in base.baselines(train, x, 3, 7)


@pytest.mark.parametrize("kind", KINDS)
def test_forecaster_shapes_and_level_shift(kind):
    model = forecaster(kind, 4, num_quantiles=3, hidden=8, depth=2, heads=2, patch=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 10))
    spec, params, state = model.init(jax.random.PRNGKey(1), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    y, _ = model.apply(params, state, x)
    assert spec.shape == y.shape == (5, 4, 3) and y.dtype == jnp.float32
    y_shift, _ = model.apply(params, state, x + 7.0)      # the window is read relative to its last value
    np.testing.assert_allclose(y_shift, y + 7.0, atol=1e-4)
    with pytest.raises(Exception, match=r"expected input windows \(B, L\)"):
        model.apply(params, state, x[..., None])


def test_forecaster_without_highway_and_constant_window_forecasts_the_level():
    model = forecaster("gru", 3, hidden=4, highway=False)
    _, params, state = model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 6), jnp.float32))
    assert set(params) == {"body", "head"}
    params = jax.tree.map(jnp.zeros_like, params)          # zero head: the naive forecast
    y, _ = model.apply(params, state, jnp.full((2, 6), 3.5))
    np.testing.assert_allclose(y, 3.5)


def test_linear_kind_is_the_highway_alone():
    model = forecaster("linear", 2)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
    _, params, state = model.init(jax.random.PRNGKey(1), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    assert set(params) == {"highway"}
    w = jax.random.normal(jax.random.PRNGKey(2), params["highway"]["w"].shape)
    params = {"highway": {"w": w, "b": jnp.array([0.5, -1.0])}}
    u = x - x[:, -1:]
    y, _ = model.apply(params, state, x)
    np.testing.assert_allclose(y[..., 0], x[:, -1:] + u @ w + jnp.array([[0.5, -1.0]]), rtol=1e-5, atol=1e-5)


def test_causal_conv_block_does_not_look_ahead():
    block = causal_conv_block(3, 3, dilation=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 12, 3))
    _, params, state = block.init(jax.random.PRNGKey(1), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    y0, _ = block.apply(params, state, x)
    y1, _ = block.apply(params, state, x.at[:, 7:].add(5.0))   # change steps >= 7
    np.testing.assert_array_equal(y0[:, :7], y1[:, :7])
    assert not np.allclose(y0[:, 7:], y1[:, 7:])


def test_patches_pad_in_front():
    x = jnp.arange(5.0).reshape(1, 5, 1)
    np.testing.assert_array_equal(patches(x, 2), [[[0, 0], [1, 2], [3, 4]]])
