"""Cross-attention against a numpy computation; keys/values computed once equal the memory path; the layer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import catalog
from deepcore.core import ShapeError
from deepcore.gradcheck import MODES, check_case
from deepcore.layers import CrossAttention, cross_attention, init_cross_attention, memory_kv


def numpy_cross_attention(p, x, memory, mask, n):
    """softmax(q k^T / sqrt(H), padding masked) v per head, in float64 numpy."""
    p = {k: {kk: np.asarray(vv, np.float64) for kk, vv in v.items()} for k, v in p.items()}
    q = np.asarray(x, np.float64) @ p["q"]["w"] + p["q"]["b"]
    kv = np.asarray(memory, np.float64) @ p["kv"]["w"] + p["kv"]["b"]
    k, v = np.split(kv, 2, axis=-1)
    b, t, _ = q.shape
    s = k.shape[1]
    h = q.shape[-1] // n
    q, k, v = q.reshape(b, t, n, h), k.reshape(b, s, n, h), v.reshape(b, s, n, h)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(h)
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    o = np.einsum("bnts,bsnh->btnh", w, v).reshape(b, t, n * h)
    return o @ p["out"]["w"] + p["out"]["b"]


@pytest.fixture
def setup():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    params = init_cross_attention(k1, 8, 2, d_memory=6, b_init=lambda k, s, d: jax.random.normal(k, s, d))
    x, memory = jax.random.normal(k2, (3, 5, 8)), jax.random.normal(k3, (3, 4, 6))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0]], bool)
    return params, x, memory, mask


@pytest.mark.parametrize("implementation", ["xla", "reference"])
def test_cross_attention_matches_numpy_with_padding(setup, implementation):
    params, x, memory, mask = setup
    y = cross_attention(params, x, memory, memory_mask=jnp.asarray(mask), num_heads=2, implementation=implementation)
    np.testing.assert_allclose(y, numpy_cross_attention(params, x, memory, mask, 2), rtol=1e-5, atol=1e-5)


def test_padding_positions_of_the_memory_do_not_matter(setup):
    params, x, memory, mask = setup
    other = jnp.where(jnp.asarray(mask)[..., None], memory, 100.0)
    a = cross_attention(params, x, memory, memory_mask=jnp.asarray(mask), num_heads=2)
    b = cross_attention(params, x, other, memory_mask=jnp.asarray(mask), num_heads=2)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(a, cross_attention(params, x, other, num_heads=2), atol=1e-3)


def test_precomputed_kv_equals_memory_path(setup):
    params, x, memory, mask = setup
    kv = memory_kv(params, memory, num_heads=2)
    assert kv["k"].shape == (3, 4, 2, 4) and kv["v"].shape == (3, 4, 2, 4)
    a = cross_attention(params, x, memory, memory_mask=jnp.asarray(mask), num_heads=2)
    b = cross_attention(params, x[:, 2:3], kv=kv, memory_mask=jnp.asarray(mask), num_heads=2)
    np.testing.assert_allclose(a[:, 2:3], b, rtol=1e-6, atol=1e-6)


def test_layer_takes_memory_and_mask_and_self(setup):
    params, x, memory, mask = setup
    layer = CrossAttention(2, d_memory=6)
    spec, p, _ = layer.init(jax.random.PRNGKey(1), jax.ShapeDtypeStruct(x.shape, x.dtype))
    assert spec.shape == (3, 5, 8) and p["kv"]["w"].shape == (6, 16)
    y, _ = layer.apply(params, {}, (x, memory, jnp.asarray(mask)))
    np.testing.assert_allclose(y, numpy_cross_attention(params, x, memory, mask, 2), rtol=1e-5, atol=1e-5)
    square = CrossAttention(2)
    _, p, _ = square.init(jax.random.PRNGKey(1), jax.ShapeDtypeStruct(x.shape, x.dtype))
    np.testing.assert_allclose(square.apply(p, {}, x)[0], square.apply(p, {}, (x, x))[0], rtol=1e-6)


def test_errors_name_the_expected_and_actual_shapes(setup):
    params, x, memory, _ = setup
    with pytest.raises(ShapeError, match=r"expected memory \(\.\.\., S, 6\), got \(3, 4, 8\)"):
        cross_attention(params, x, jnp.zeros((3, 4, 8)), num_heads=2)
    with pytest.raises(ShapeError, match="batch shape"):
        cross_attention(params, x, memory[:2], num_heads=2)
    with pytest.raises(ValueError, match="exactly one of memory and kv"):
        cross_attention(params, x, num_heads=2)


@pytest.mark.parametrize("name", ["cross_attention_memory_mask", "encoder_decoder_loss"])
def test_catalog_function_cases_pass_the_gradient_check(name):
    case = next(c for c in catalog.FUNCTION_CASES if c.name == name)
    r = check_case(case, seed=0, modes=MODES, k=2, full_max=32, samples=4, hvp_k=1)
    assert r.ok, r.table()
