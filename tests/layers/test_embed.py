"""Embedding lookups, the tied output head and the integer-input check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError

KEY = jax.random.PRNGKey(0)


def test_lookup_and_tied_head():
    emb = L.Embedding(11, 4)
    ids = jnp.array([[0, 3, 10], [5, 5, 1]])
    spec, params, _ = emb.init(KEY, ids)
    assert params["w"].shape == (11, 4) and spec.shape == (2, 3, 4) and spec.dtype == jnp.float32
    y, _ = emb.apply(params, {}, ids)
    np.testing.assert_array_equal(y, np.asarray(params["w"])[np.asarray(ids)])
    logits = L.embed_attend(params, y)
    assert logits.shape == (2, 3, 11)
    np.testing.assert_allclose(logits, np.asarray(y) @ np.asarray(params["w"]).T, rtol=1e-5, atol=1e-5)
    # each token's own row scores highest against itself only if rows are distinct; the diagonal equals |w_i|^2
    np.testing.assert_allclose(logits[0, 1, 3], np.sum(np.asarray(params["w"])[3] ** 2), rtol=1e-5)


def test_float_ids_are_rejected_with_path():
    model = L.serial(L.Embedding(5, 3), L.Dense(2))
    with pytest.raises(ShapeError, match=r"serial/embedding_0: expected integer ids .* float32 input of shape \(2, 4\)"):
        model.init(KEY, (2, 4))


def test_compute_dtype_and_attend_shape_error():
    emb = L.Embedding(6, 3, dtype=jnp.bfloat16)
    _, params, _ = emb.init(KEY, jax.ShapeDtypeStruct((2,), jnp.int32))
    assert params["w"].dtype == jnp.float32
    y, _ = emb.apply(params, {}, jnp.array([1, 2]))
    assert y.dtype == jnp.bfloat16
    with pytest.raises(ShapeError, match=r"expected input \(\.\.\., 3\), got \(2, 4\)"):
        L.embed_attend(params, jnp.ones((2, 4)))
