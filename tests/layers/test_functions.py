"""Each pure function beside a layer (``dense`` beside ``Dense``, ...) equals that layer's ``apply``, bit for bit,
in eval and train mode (the layers' own tests check the values against numpy)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.layers.attention import head_sizes, init_attention
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout
from deepcore.layers.embed import embed
from deepcore.layers.norm import batch_norm, group_norm, init_norm, layer_norm, rms_norm

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
