"""Timestep embeddings (deepcore.layers.time_embedding) against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import ShapeError
from deepcore.layers.time_embedding import TimeEmbedding, time_embedding, timestep_embedding


def numpy_table(t, dim, base=10000.0):
    """sin(t / base^(2i/dim)) at feature 2i, cos at 2i + 1."""
    t = np.asarray(t, np.float64)[..., None]
    out = np.zeros(t.shape[:-1] + (dim,))
    for i in range(dim // 2):
        out[..., 2 * i] = np.sin(t[..., 0] / base ** (2 * i / dim))
        out[..., 2 * i + 1] = np.cos(t[..., 0] / base ** (2 * i / dim))
    return out


def test_timestep_embedding_matches_numpy():
    t = np.array([0, 1, 17, 500, 999])
    got = timestep_embedding(jnp.asarray(t), 16)
    assert got.shape == (5, 16) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), numpy_table(t, 16), atol=2e-4)   # angles up to 999 in float32
    np.testing.assert_allclose(np.asarray(timestep_embedding(jnp.asarray([[3.5]]), 4, base=100.0)),
                               numpy_table([[3.5]], 4, base=100.0), atol=1e-6)


def test_odd_dim_is_refused():
    with pytest.raises(ShapeError, match="even dim, got 5"):
        timestep_embedding(jnp.arange(3), 5)
    with pytest.raises(ValueError, match="even dim, got 3"):
        TimeEmbedding(8, dim=3)


def test_layer_is_the_mlp_over_the_table():
    lay = TimeEmbedding(6, dim=4)
    spec, params, _ = lay.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((3,), jnp.int32))
    assert spec.shape == (3, 6) and params["fc_in"]["w"].shape == (4, 6) and params["fc_out"]["w"].shape == (6, 6)
    t = np.array([2, 40, 700])
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = numpy_table(t, 4) @ p["fc_in"]["w"] + p["fc_in"]["b"]
    h = h / (1 + np.exp(-h))   # silu
    want = h @ p["fc_out"]["w"] + p["fc_out"]["b"]
    got = lay.apply(params, {}, jnp.asarray(t))[0]
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(time_embedding(params, jnp.asarray(t), dim=4)))
