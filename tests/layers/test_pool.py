"""Max/avg pooling against a numpy reference (any rank, strides, SAME/VALID/explicit padding), global pools."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError


def same_pads(n, k, s):
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def np_pool(x, window, strides, padding, op, include_pad=False):
    """Reference pooling of ``x: (N, *spatial, C)`` by explicit loops over output positions."""
    rank = len(window)
    spatial = x.shape[1:-1]
    if padding == "VALID":
        pads = [(0, 0)] * rank
    elif padding == "SAME":
        pads = [same_pads(n, k, s) for n, k, s in zip(spatial, window, strides)]
    else:
        pads = [(padding, padding)] * rank
    fill = 0.0 if (op == "avg" and include_pad) else np.nan
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)], constant_values=fill)
    out_sizes = [(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(spatial, pads, window, strides)]
    out = np.empty((x.shape[0],) + tuple(out_sizes) + (x.shape[-1],))
    for pos in itertools.product(*[range(o) for o in out_sizes]):
        sl = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, window))
        win = xp[(slice(None),) + sl + (slice(None),)]
        axes = tuple(range(1, rank + 1))
        out[(slice(None),) + pos + (slice(None),)] = np.nanmax(win, axes) if op == "max" else np.nanmean(win, axes)
    return out


CONFIGS = [((2,), None, "VALID"), ((3,), (2,), "SAME"), ((2, 2), None, "VALID"), ((3, 3), (2, 2), "SAME"),
           ((2, 3), (1, 2), 1), ((2, 2, 2), None, "VALID"), ((3, 2, 2), (2, 1, 2), "SAME")]


@pytest.mark.parametrize("window,strides,padding", CONFIGS)
def test_pools_match_numpy(window, strides, padding):
    rank = len(window)
    shape = (2,) + (5, 6, 4)[:rank] + (3,)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), shape))
    st = strides or window
    for op, lay in [("max", L.MaxPool(window, strides, padding)), ("avg", L.AvgPool(window, strides, padding))]:
        spec, _, _ = lay.init(jax.random.PRNGKey(0), x.shape)
        y, _ = lay.apply({}, {}, jnp.asarray(x))
        ref = np_pool(x, window, st, padding, op)
        assert y.shape == ref.shape == spec.shape
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=op)
    if padding != "VALID":
        y, _ = L.AvgPool(window, strides, padding, count_include_pad=True).apply({}, {}, jnp.asarray(x))
        np.testing.assert_allclose(y, np_pool(x, window, st, padding, "avg", include_pad=True), rtol=1e-5, atol=1e-6)


def test_global_pools_and_single_examples():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4, 5))
    y, _ = L.GlobalAvgPool().apply({}, {}, x)
    np.testing.assert_allclose(y, np.asarray(x).mean((1, 2)), rtol=1e-6)
    y, _ = L.GlobalMaxPool(keepdims=True).apply({}, {}, x)
    np.testing.assert_allclose(y, np.asarray(x).max((1, 2), keepdims=True))
    y, _ = L.GlobalAvgPool(spatial_rank=1).apply({}, {}, x)  # (2, 3, 4, 5): batch (2, 3), length 4
    np.testing.assert_allclose(y, np.asarray(x).mean(2), rtol=1e-6)
    y, _ = L.MaxPool2D(2).apply({}, {}, x[0])
    np.testing.assert_allclose(y, np_pool(np.asarray(x[:1]), (2, 2), (2, 2), "VALID", "max")[0])


def test_pool_rank_error():
    with pytest.raises(ShapeError, match=r"max_pool: expected input of shape \(\.\.\., H, W, C\) with at least 3 dims, "
                                         r"got \(4, 3\)"):
        L.MaxPool2D(2).apply({}, {}, jnp.ones((4, 3)))


@pytest.mark.parametrize("window,padding", [((2, 2), "VALID"), ((2, 3), ((0, 0), (0, 0))), ((2,), "VALID")])
def test_max_pool_tiling_windows_matches_reduce_window_and_its_gradient(window, padding):
    """Exactly tiling windows take the reshape-and-max route; values and (tie-free) gradients equal XLA's."""
    from jax import lax

    rank = len(window)
    x = jax.random.normal(jax.random.PRNGKey(2), (3,) + (4, 6)[:rank] + (5,))   # sizes divisible by window
    dims = (1,) + window + (1,)
    ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, dims, dims, "VALID")
    pool = lambda x: L.MaxPool(window, None, padding).apply({}, {}, x)[0]
    np.testing.assert_array_equal(pool(x), ref(x))
    np.testing.assert_allclose(pool(x), np_pool(np.asarray(x), window, window, "VALID", "max"), rtol=1e-6)
    w = jax.random.normal(jax.random.PRNGKey(3), ref(x).shape)
    g_pool = jax.grad(lambda x: jnp.sum(w * pool(x)))(x)
    np.testing.assert_array_equal(g_pool, jax.grad(lambda x: jnp.sum(w * ref(x)))(x))
    assert int(jnp.sum(g_pool != 0)) == w.size                  # one winner per window
