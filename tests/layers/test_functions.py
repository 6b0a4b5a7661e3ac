"""Each pure function beside a layer (``dense`` beside ``Dense``, ...) equals that layer's ``apply``, bit for bit,
in eval and train mode (the layers' own tests check the values against numpy)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.layers.attention import head_sizes, init_attention
from deepcore.layers.basic import flatten
from deepcore.layers.conv import conv, conv_transpose
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout
from deepcore.layers.embed import embed
from deepcore.layers.norm import batch_norm, group_norm, init_norm, layer_norm, rms_norm
from deepcore.layers.pool import avg_pool, global_avg_pool, global_max_pool, max_pool
from deepcore.layers.position import learned_positions, sinusoidal_positions

KEY, CALL = jax.random.PRNGKey(0), jax.random.PRNGKey(1)


def _x(shape, seed=2):
    return jax.random.normal(jax.random.PRNGKey(seed), shape) * 2.0 + 0.5


def _random_params(params, seed=3):
    """Random values in place of init's (ones, zeros), so a function that ignored a parameter would differ."""
    leaves, tree = jax.tree.flatten(params)
    return jax.tree.unflatten(tree, [_x(a.shape, seed + i).astype(a.dtype) for i, a in enumerate(leaves)])


# (name, layer, its input, fn(params, state, x, key, train) -> (y, state))
PAIRS = [
    ("dense", L.Dense(5), _x((3, 4)), lambda p, s, x, k, t: (dense(p, x), s)),
    ("dense_nobias_bf16", L.Dense(5, use_bias=False, dtype=jnp.bfloat16), _x((2, 3, 4)),
     lambda p, s, x, k, t: (dense(p, x, dtype=jnp.bfloat16), s)),
    ("dropout", L.Dropout(0.3, broadcast_dims=(0,)), _x((4, 6)),
     lambda p, s, x, k, t: (dropout(x, 0.3, key=k, train=t, broadcast_dims=(0,)), s)),
    ("layer_norm", L.LayerNorm(epsilon=1e-3), _x((2, 3, 6)), lambda p, s, x, k, t: (layer_norm(p, x, epsilon=1e-3), s)),
    ("layer_norm_noscale", L.LayerNorm(use_scale=False), _x((2, 6)), lambda p, s, x, k, t: (layer_norm(p, x), s)),
    ("rms_norm", L.RMSNorm(), _x((2, 3, 6)), lambda p, s, x, k, t: (rms_norm(p, x), s)),
    ("group_norm", L.GroupNorm(3, spatial_rank=1), _x((2, 5, 6)),
     lambda p, s, x, k, t: (group_norm(p, x, num_groups=3, spatial_rank=1), s)),
    ("batch_norm", L.BatchNorm(momentum=0.9), _x((8, 3, 4)),
     lambda p, s, x, k, t: batch_norm(p, s, x, train=t, momentum=0.9)),
    ("embed", L.Embedding(9, 4), jnp.array([[0, 3, 8], [2, 2, 1]]), lambda p, s, x, k, t: (embed(p, x), s)),
    ("conv", L.Conv(4, (3, 2), strides=(2, 1), dilation=(1, 2), padding="VALID"), _x((2, 7, 6, 3)),
     lambda p, s, x, k, t: (conv(p, x, strides=(2, 1), dilation=(1, 2), padding="VALID"), s)),
    ("conv_groups_1d", L.Conv1D(4, 3, groups=2, use_bias=False), _x((5, 4)),
     lambda p, s, x, k, t: (conv(p, x, groups=2), s)),
    ("conv_transpose", L.ConvTranspose(3, (3, 3), strides=2, padding=((1, 2), (0, 1))), _x((2, 4, 4, 2)),
     lambda p, s, x, k, t: (conv_transpose(p, x, strides=2, padding=((1, 2), (0, 1))), s)),
    ("max_pool", L.MaxPool((3, 2), strides=(2, 1), padding="SAME"), _x((2, 5, 4, 3)),
     lambda p, s, x, k, t: (max_pool(x, (3, 2), (2, 1), "SAME"), s)),
    ("max_pool_tiled", L.MaxPool2D(2), _x((2, 4, 4, 3)), lambda p, s, x, k, t: (max_pool(x, (2, 2)), s)),
    ("avg_pool", L.AvgPool((3,), strides=1, padding=1), _x((2, 5, 3)),
     lambda p, s, x, k, t: (avg_pool(x, (3,), 1, 1), s)),
    ("avg_pool_include_pad", L.AvgPool((2, 2), padding="SAME", count_include_pad=True), _x((3, 3, 2)),
     lambda p, s, x, k, t: (avg_pool(x, (2, 2), padding="SAME", count_include_pad=True), s)),
    ("global_avg_pool", L.GlobalAvgPool(keepdims=True), _x((2, 3, 4, 5)),
     lambda p, s, x, k, t: (global_avg_pool(x, keepdims=True), s)),
    ("global_max_pool", L.GlobalMaxPool(1), _x((2, 3, 5)), lambda p, s, x, k, t: (global_max_pool(x, 1), s)),
    ("flatten", L.Flatten(), _x((2, 3, 4)), lambda p, s, x, k, t: (flatten(x), s)),
    ("flatten_last3", L.Flatten(-3), _x((2, 2, 3, 4, 5)), lambda p, s, x, k, t: (flatten(x, -3), s)),
    ("learned_positions", L.LearnedPositions(9), _x((2, 5, 4)), lambda p, s, x, k, t: (learned_positions(p, x), s)),
    ("sinusoidal_positions", L.SinusoidalPositions(), _x((2, 5, 4)),
     lambda p, s, x, k, t: (sinusoidal_positions(x), s)),
]


@pytest.mark.parametrize("name,lay,x,fn", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("train", [False, True])
def test_function_equals_layer(name, lay, x, fn, train):
    _, params, state = lay.init(KEY, x)
    params = _random_params(params)
    want = lay.apply(params, state, x, key=CALL, train=train)
    got = fn(params, state, x, CALL, train)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(np.asarray(w, np.float32), np.asarray(g, np.float32))
    assert len(jax.tree.leaves(want)) == len(jax.tree.leaves(got))
    if train and name.startswith("dropout"):   # the function really drops in train mode
        assert (np.asarray(got[0]) == 0).any() and (np.asarray(got[0]) != 0).any()


def test_init_norm_is_layer_norms_init():
    with jax.enable_x64(True):
        _, params, _ = L.LayerNorm().init(KEY, jax.ShapeDtypeStruct((2, 5), jnp.float64))
        ours = init_norm(5, jnp.float64)
    assert ours["scale"].dtype == jnp.float64
    assert jax.tree.map(lambda a: (a.shape, a.dtype), ours) == jax.tree.map(lambda a: (a.shape, a.dtype), params)
    np.testing.assert_array_equal(ours["scale"], 1.0)
    np.testing.assert_array_equal(ours["bias"], 0.0)
    assert "bias" not in init_norm(5, use_bias=False)


@pytest.mark.parametrize("heads,kv,head_dim", [(4, None, 3), (4, 2, 5), (6, 1, 2)])
def test_head_sizes_reads_the_qkv_width(heads, kv, head_dim):
    p = init_attention(KEY, 7, heads, head_dim=head_dim, num_kv_heads=kv)
    assert head_sizes(p, heads, kv) == (heads, kv or heads, head_dim)


def test_flatten_counts_negative_start_from_the_end():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(flatten(jnp.asarray(x), -2), x.reshape(2, 3, 20))
    np.testing.assert_array_equal(flatten(jnp.asarray(x), 0), x.reshape(-1))
    with pytest.raises(ValueError, match=r"expected at least 3 dims to flatten from start_dim=-3, got \(4, 5\)"):
        flatten(jnp.zeros((4, 5)), -3)


def test_positions_at_an_offset_index():
    p = {"table": _x((8, 4))}
    x = _x((2, 3, 4), seed=9)
    np.testing.assert_array_equal(learned_positions(p, x, index=2), x + p["table"][None, 2:5])
    full = sinusoidal_positions(jnp.zeros((6, 4)))
    np.testing.assert_allclose(sinusoidal_positions(x, index=3), x + full[None, 3:], rtol=1e-6, atol=1e-6)
