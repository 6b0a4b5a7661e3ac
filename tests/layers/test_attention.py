"""Attention against a numpy softmax(QK^T/sqrt(d))V reference, masks, grouped-query heads, the KV cache and
positional embeddings."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import ShapeError
from deepcore.layers.attention import MultiHeadAttention, attention, init_cache, self_attention
from deepcore.layers.position import LearnedPositions, rope, sinusoidal

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("layers_test_attention")

B, T, N, H = 2, 6, 4, 8
jit_attention = jax.jit(attention, static_argnames=("causal", "implementation"))


def np_attention(q, k, v, causal=False, key_mask=None):
    """The textbook formula in float64 numpy, key/value heads repeated for grouped queries."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    g = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    allowed = np.ones(logits.shape, bool)
    if causal:
        allowed &= np.tril(np.ones(logits.shape[-2:], bool))
    if key_mask is not None:
        allowed &= np.asarray(key_mask)[:, None, None, :]
    logits = np.where(allowed, logits, -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bnts,bsnh->btnh", p, v)


def qkv(kv_heads, seed=0):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (jax.random.normal(ks[0], (B, T, N, H)), jax.random.normal(ks[1], (B, T, kv_heads, H)),
            jax.random.normal(ks[2], (B, T, kv_heads, H)))


KEY_MASK = jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)   # right padding in example 0
MASKINGS = [(False, None), (True, None), (False, KEY_MASK), (True, KEY_MASK)]   # (causal, key_mask)


@functools.partial(jax.jit, static_argnames="implementation")
def every_masking(q, k, v, implementation):
    return [attention(q, k, v, causal=c, key_mask=m, implementation=implementation) for c, m in MASKINGS]


@pytest.mark.parametrize("implementation", ["xla", "reference"])
@pytest.mark.parametrize("kv_heads", [N, 2, 1])
def test_attention_matches_numpy_formula_under_causal_and_padding_masks(implementation, kv_heads):
    q, k, v = qkv(kv_heads)
    for (causal, km), out in zip(MASKINGS, every_masking(q, k, v, implementation)):
        np.testing.assert_allclose(out, np_attention(q, k, v, causal, km), rtol=2e-5, atol=2e-5,
                                   err_msg=f"causal={causal} padded={km is not None}")


def test_implementations_agree_with_general_mask_and_leading_dims():
    q, k, v = qkv(2, seed=1)
    q, k, v = (a.reshape((1,) + a.shape) for a in (q, k, v))          # two leading batch dims
    mask = jax.random.bernoulli(jax.random.PRNGKey(3), 0.7, (1, B, N, T, T)).at[..., 0].set(True)
    a = jit_attention(q, k, v, mask=mask, causal=True, key_mask=KEY_MASK[None])
    b = jit_attention(q, k, v, mask=mask, causal=True, key_mask=KEY_MASK[None], implementation="reference")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.shape == q.shape


def test_cross_attention_with_different_lengths():
    ks = jax.random.split(jax.random.PRNGKey(4), 3)
    q, k, v = (jax.random.normal(ks[0], (B, 3, N, H)), jax.random.normal(ks[1], (B, 7, 2, H)),
               jax.random.normal(ks[2], (B, 7, 2, H)))
    np.testing.assert_allclose(jit_attention(q, k, v), np_attention(q, k, v), rtol=2e-5, atol=2e-5)


def test_bad_shapes_raise_shape_error():
    q, k, v = qkv(3)
    with pytest.raises(ShapeError, match="N % K == 0"):
        attention(q, k, v)
    lay = MultiHeadAttention(3)
    with pytest.raises(ShapeError, match="divisible by 3 heads"):
        lay.init(jax.random.PRNGKey(0), (2, 5, 8))
    _, params, _ = MultiHeadAttention(2).init(jax.random.PRNGKey(0), (2, 5, 8))
    with pytest.raises(ShapeError, match=r"attention: expected input \(\.\.\., T, 8\), got \(2, 5, 6\)"):
        MultiHeadAttention(2).apply(params, {}, jnp.zeros((2, 5, 6)))


@pytest.fixture(scope="session")
def causal_layer():
    lay = MultiHeadAttention(N, num_kv_heads=2, causal=True, rope=True)
    _, params, _ = lay.init(jax.random.PRNGKey(0), (B, T, 16))
    return lay, params, jax.random.normal(jax.random.PRNGKey(1), (B, T, 16))


def test_changing_a_future_token_never_changes_an_earlier_output(causal_layer):
    lay, params, x = causal_layer
    apply = jax.jit(lambda x: lay.apply(params, {}, x)[0])
    y = apply(x)
    for j in range(T):
        y2 = apply(x.at[:, j].add(1.0))
        np.testing.assert_array_equal(y2[:, :j], y[:, :j])
        assert np.all(np.abs(np.asarray(y2[:, j:] - y[:, j:])).max(axis=(0, 2)) > 1e-4)


def test_padded_keys_do_not_influence_outputs():
    lay = MultiHeadAttention(2)
    _, params, _ = lay.init(jax.random.PRNGKey(0), (B, T, 8))
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, 8))
    apply = jax.jit(lambda x, m: lay.apply(params, {}, (x, m))[0])
    y = apply(x, KEY_MASK)
    y2 = apply(x.at[0, 4:].set(100.0), KEY_MASK)
    np.testing.assert_allclose(y2[0, :4], y[0, :4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2[1], y[1], rtol=1e-6)
    assert not np.allclose(apply(x, jnp.ones_like(KEY_MASK))[0], y[0], atol=1e-3)   # the mask did something


def test_cache_prefill_and_steps_equal_full_attention(causal_layer):
    lay, params, x = causal_layer
    full = jax.jit(lambda x: lay.apply(params, {}, x)[0])(x)
    opts = dict(num_heads=N, num_kv_heads=2, causal=True, rope=True)
    step = jax.jit(lambda c, xi, i: self_attention(params, xi, cache=c, index=i, **opts))
    y0, cache = step(init_cache((B,), 10, 2, 16 // N), x[:, :3], 0)   # prefill 3 tokens, then one at a time
    ys = [y0]
    for i in range(3, T):
        y, cache = step(cache, x[:, i:i + 1], i)
        ys.append(y)
    got = jnp.concatenate(ys, axis=1)
    np.testing.assert_allclose(got[0], full[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1, 1:], full[1, 1:], rtol=1e-5, atol=1e-5)   # [1, 0] sees no key: undefined
    assert cache["k"].shape == (B, 10, 2, 4) and np.all(np.asarray(cache["k"][:, T:]) == 0)


def test_rope_scores_depend_only_on_relative_position():
    q = jax.random.normal(jax.random.PRNGKey(0), (1, 1, 1, 8))
    k = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 1, 8))

    def score(pq, pk):
        return float(jnp.sum(rope(q, jnp.array([pq])) * rope(k, jnp.array([pk]))))

    assert score(5, 2) == pytest.approx(score(13, 10), rel=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)
    np.testing.assert_allclose(rope(q, jnp.array([0])), q)                       # position 0: identity
    np.testing.assert_allclose(jnp.linalg.norm(rope(q, jnp.array([7]))), jnp.linalg.norm(q), rtol=1e-6)


def test_sinusoidal_table_follows_the_formula():
    table = np.asarray(sinusoidal(jnp.arange(10), 6))
    p, i = np.arange(10)[:, None], np.arange(3)[None, :]
    np.testing.assert_allclose(table[:, 0::2], np.sin(p / 10000 ** (2 * i / 6)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table[:, 1::2], np.cos(p / 10000 ** (2 * i / 6)), rtol=1e-5, atol=1e-6)


def test_learned_positions_add_the_table_and_check_length():
    lay = LearnedPositions(8)
    _, params, _ = lay.init(jax.random.PRNGKey(0), (2, 5, 4))
    x = jnp.ones((2, 5, 4))
    np.testing.assert_allclose(lay.apply(params, {}, x)[0], x + params["table"][None, :5])
    with pytest.raises(ShapeError, match="at most 8 positions"):
        lay.apply(params, {}, jnp.ones((2, 9, 4)))


def test_float64_attention_is_exact_on_the_default_path():
    # jax.nn's XLA path takes the softmax in float32; float64 inputs must not lose precision (gradient checks)
    q32, k32, v32 = qkv(2)
    with jax.enable_x64(True):
        q, k, v = (jnp.asarray(np.asarray(a, np.float64)) for a in (q32, k32, v32))
        out = jax.jit(lambda q, k, v: attention(q, k, v, causal=True, key_mask=KEY_MASK))(q, k, v)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(out, np_attention(q, k, v, True, KEY_MASK), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- implementation="auto", packed sequences

def test_auto_picks_cudnn_only_where_it_is_valid():
    from deepcore.layers.attention import choose_implementation
    bf = jnp.zeros((B, 8, N, 64), jnp.bfloat16)
    assert choose_implementation(bf, bf, causal=True, backend="gpu")[0] == "cudnn"
    assert choose_implementation(bf, bf, backend="gpu")[0] == "cudnn"
    fallbacks = {  # (arguments, words the reason must contain)
        "cpu": (dict(q=bf, k=bf, backend="cpu"), "cpu"),
        "fp32": (dict(q=bf.astype(jnp.float32), k=bf.astype(jnp.float32), backend="gpu"), "float32"),
        "head": (dict(q=bf[..., :12], k=bf[..., :12], backend="gpu"), "head size 12"),
        "causal T != S": (dict(q=bf[:, :1], k=bf, causal=True, backend="gpu"), "1 queries and 8 keys"),
        "mask": (dict(q=bf, k=bf, mask=jnp.ones((8, 8), bool), backend="gpu"), "general mask"),
        "key_mask": (dict(q=bf, k=bf, key_mask=jnp.ones((B, 8), bool), backend="gpu"), "key_lengths"),
        "segments": (dict(q=bf, k=bf, segment_ids=jnp.zeros((B, 8), jnp.int32), backend="gpu"), "segment_ids"),
    }
    for case, (kw, words) in fallbacks.items():
        impl, reason = choose_implementation(kw.pop("q"), kw.pop("k"), **kw)
        assert impl == "xla" and words in reason, (case, impl, reason)
    assert choose_implementation(bf, bf, implementation="reference") == ("reference", "asked for")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_auto_equals_reference_on_this_backend(dtype):
    q, k, v = (a.astype(dtype) for a in qkv(2, seed=5))
    for causal, km in MASKINGS:
        a = attention(q, k, v, causal=causal, key_mask=km)
        b = attention(q, k, v, causal=causal, key_mask=km, implementation="reference")
        tol = 2e-5 if dtype == jnp.float32 else 2e-2
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol, atol=tol)


def test_key_lengths_equal_the_right_padding_key_mask():
    q, k, v = qkv(N, seed=6)
    lengths = jnp.array([4, 6])
    a = attention(q, k, v, causal=True, key_lengths=lengths)
    b = attention(q, k, v, causal=True, key_mask=jnp.arange(T)[None] < lengths[:, None], implementation="reference")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_packed_sequences_never_attend_across_segments():
    """Two sequences packed in one row give the outputs each gives alone; changing one never changes the other."""
    q, k, v = qkv(2, seed=7)
    seg = jnp.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    packed = jax.jit(lambda q, k, v: attention(q, k, v, causal=True, segment_ids=seg))
    out = packed(q, k, v)
    for row, cut in ((0, 3), (1, 2)):
        for lo, hi in ((0, cut), (cut, T)):
            alone = attention(q[row:row + 1, lo:hi], k[row:row + 1, lo:hi], v[row:row + 1, lo:hi], causal=True,
                              implementation="reference")
            np.testing.assert_allclose(out[row:row + 1, lo:hi], alone, rtol=1e-5, atol=1e-6)
    k2 = k.at[0, 3:].add(5.0)                          # change the second sequence of row 0 only
    np.testing.assert_array_equal(packed(q, k2, v)[0, :3], out[0, :3])


def test_cache_with_python_index_prefill_and_decode_equals_full_recomputation():
    """The fusable cache paths (prefill at a Python index 0, one token with key_lengths) and the masked chunk path
    agree with attention over the whole sequence, also with padding."""
    ks = jax.random.split(jax.random.PRNGKey(8), 2)
    x = jax.random.normal(ks[0], (B, T, 16))
    km = jnp.array([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]], bool)   # example 1: a left-padded prompt
    params = MultiHeadAttention(N, num_kv_heads=2, causal=True).init(ks[1], x)[1]
    opts = dict(num_heads=N, num_kv_heads=2, causal=True)
    full, _ = self_attention(params, x, key_mask=km, **opts)
    cache_km = jnp.concatenate([km, jnp.ones((B, 4), bool)], axis=1)   # the cache is 10 long
    y0, cache = self_attention(params, x[:, :2], cache=init_cache((B,), 10, 2, 4), index=0, key_mask=cache_km,
                               **opts)
    ys = [y0]
    y, cache = self_attention(params, x[:, 2:4], cache=cache, index=2, key_mask=cache_km, **opts)   # a chunk
    ys.append(y)
    for i in (4, 5):
        y, cache = jax.jit(lambda c, xi, i: self_attention(params, xi, cache=c, index=i, key_mask=cache_km, **opts))(
            cache, x[:, i:i + 1], i)
        ys.append(y)
    got = jnp.concatenate(ys, axis=1)
    np.testing.assert_allclose(got[0], full[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1, 1:], full[1, 1:], rtol=1e-5, atol=1e-5)   # [1, 0] sees no key: undefined
