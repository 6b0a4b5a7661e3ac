"""LayerNorm, RMSNorm, GroupNorm and BatchNorm against numpy references; BatchNorm's train/eval and running stats."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError

KEY = jax.random.PRNGKey(0)


def rand(shape, seed=1, scale=1.0, shift=0.0):
    return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), shape)) * scale + shift


def random_affine(params, seed=7):
    """Replace scale/bias by random values so the test sees them used."""
    return {k: jnp.asarray(rand(v.shape, seed + i)) for i, (k, v) in enumerate(sorted(params.items()))}


def test_layer_norm_matches_numpy():
    x = rand((2, 3, 6), scale=3.0, shift=2.0)
    lay = L.LayerNorm(epsilon=1e-5)
    _, params, _ = lay.init(KEY, x.shape)
    params = random_affine(params)
    y, _ = lay.apply(params, {}, jnp.asarray(x))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5) * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_rms_norm_matches_numpy():
    x = rand((4, 5), shift=1.0)
    lay = L.RMSNorm(epsilon=1e-6)
    _, params, _ = lay.init(KEY, x.shape)
    params = random_affine(params)
    assert set(params) == {"scale"}
    y, _ = lay.apply(params, {}, jnp.asarray(x))
    ref = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * np.asarray(params["scale"])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_group_norm_matches_numpy_and_instance_norm():
    x = rand((2, 3, 4, 6), scale=2.0, shift=-1.0)
    lay = L.GroupNorm(3)
    _, params, _ = lay.init(KEY, x.shape)
    params = random_affine(params)
    y, _ = lay.apply(params, {}, jnp.asarray(x))
    g = x.reshape(2, 3, 4, 3, 2)
    mu, var = g.mean((1, 2, 4), keepdims=True), g.var((1, 2, 4), keepdims=True)
    ref = ((g - mu) / np.sqrt(var + 1e-5)).reshape(x.shape) * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # one group per channel: instance norm over the spatial dims
    inst = L.GroupNorm(6, use_scale=False, use_bias=False)
    y, _ = inst.apply({}, {}, jnp.asarray(x))
    ref = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_group_norm_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ShapeError, match=r"group_norm: expected input channels divisible by num_groups=4 .*\(2, 3, 3, 6\)"):
        L.GroupNorm(4).init(KEY, (2, 3, 3, 6))


def test_norm_layers_name_expected_and_actual_channels():
    _, params, _ = L.LayerNorm().init(KEY, (2, 4))
    with pytest.raises(ShapeError, match=r"layer_norm: expected input with 4 channels \(\.\.\., C\), got \(2, 5\)"):
        L.LayerNorm().apply(params, {}, jnp.ones((2, 5)))


def test_batch_norm_train_normalises_with_batch_stats_and_eval_with_running_stats():
    x = jnp.asarray(rand((16, 3), scale=4.0, shift=3.0))
    bn = L.BatchNorm()
    _, params, state = bn.init(KEY, x.shape)
    y, new_state = bn.apply(params, state, x, train=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(0), 1, atol=1e-3)  # var/(var+eps), eps=1e-5, var ~ 16
    assert not np.allclose(new_state["mean"], state["mean"])
    # eval with the initial running stats (mean 0, var 1) is x / sqrt(1 + eps); the state is returned as is
    y_eval, same = bn.apply(params, state, x, train=False)
    np.testing.assert_allclose(y_eval, x / np.sqrt(1 + 1e-5), rtol=1e-6)
    assert same is state


def test_batch_norm_running_average_matches_numpy_over_steps():
    momentum, eps = 0.9, 1e-5
    bn = L.BatchNorm(momentum=momentum, epsilon=eps)
    _, params, state = bn.init(KEY, (8, 2, 3))
    params = random_affine(params)
    step = jax.jit(lambda s, x: bn.apply(params, s, x, train=True))
    mean, var = np.zeros(3), np.ones(3)
    for i in range(4):
        x = rand((8, 2, 3), seed=10 + i, scale=1.0 + i, shift=float(i))
        y, state = step(state, jnp.asarray(x))
        bm, bv = x.mean((0, 1)), x.var((0, 1))  # biased batch variance, for normalising and for the update
        mean, var = momentum * mean + (1 - momentum) * bm, momentum * var + (1 - momentum) * bv
        ref = (x - bm) / np.sqrt(bv + eps) * np.asarray(params["scale"]) + np.asarray(params["bias"])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(state["mean"], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], var, rtol=1e-5, atol=1e-6)
    x = rand((5, 2, 3), seed=99)
    y_eval, _ = bn.apply(params, state, jnp.asarray(x), train=False)
    ref = (x - mean) / np.sqrt(var + eps) * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(y_eval, ref, rtol=1e-4, atol=1e-5)


def test_batch_norm_axis_name_averages_statistics_across_the_named_axis():
    # two "devices" of 4 examples each, mapped with vmap as pmap/shard_map would: stats equal the 8-example ones
    x = jnp.asarray(rand((8, 3), scale=2.0, shift=1.0))
    bn, bn_sync = L.BatchNorm(), L.BatchNorm(axis_name="devices")
    _, params, state = bn.init(KEY, x.shape)
    y_all, s_all = bn.apply(params, state, x, train=True)
    y_sh, s_sh = jax.vmap(lambda xs: bn_sync.apply(params, state, xs, train=True), axis_name="devices")(x.reshape(2, 4, 3))
    np.testing.assert_allclose(y_sh.reshape(8, 3), y_all, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(s_sh[k], jnp.broadcast_to(s_all[k], (2, 3)), rtol=1e-5, atol=1e-6)
    # without the sync each shard uses its own statistics, which differ
    y_local, _ = jax.vmap(lambda xs: bn.apply(params, state, xs, train=True))(x.reshape(2, 4, 3))
    assert not np.allclose(y_local.reshape(8, 3), y_all, atol=1e-3)


def test_batch_norm_bfloat16_keeps_float32_statistics():
    bn = L.BatchNorm()
    _, params, state = bn.init(KEY, jax.ShapeDtypeStruct((6, 4), jnp.bfloat16))
    x = jnp.asarray(rand((6, 4), shift=2.0), jnp.bfloat16)
    y, new_state = bn.apply(params, state, x, train=True)
    assert y.dtype == jnp.bfloat16
    assert new_state["mean"].dtype == new_state["var"].dtype == jnp.float32
