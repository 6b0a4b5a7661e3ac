"""U-Net parts (deepcore.layers.unet) against numpy, and the U-Net model's contract (deepcore.models.unet)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import ShapeError
from deepcore.layers.unet import Downsample, ResBlock, Upsample, init_res_block, res_block, upsample_nearest
from deepcore.models.unet import unet


def np_conv_same(x, w, b):
    """A stride-1 SAME convolution in numpy: x (B, H, W, C), w (k, k, C, F)."""
    k = w.shape[0]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    h, wd = x.shape[1:3]
    out = sum(np.einsum("bhwc,cf->bhwf", xp[:, i:i + h, j:j + wd], w[i, j]) for i in range(k) for j in range(k))
    return out + b


def np_group_norm(x, p, groups, eps=1e-5):
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    g = (g - g.mean(axis=(1, 2, 4), keepdims=True)) / np.sqrt(g.var(axis=(1, 2, 4), keepdims=True) + eps)
    return g.reshape(x.shape) * p["scale"] + p["bias"]


def silu(x):
    return x / (1 + np.exp(-x))


@pytest.mark.parametrize("c_in,c_out", [(4, 6), (4, 4)])
def test_res_block_matches_numpy(c_in, c_out):
    with jax.enable_x64(True):
        params = init_res_block(jax.random.PRNGKey(0), c_in, c_out, 5, jnp.float64, zero_init=False)
        kx, ke = jax.random.split(jax.random.PRNGKey(1))
        x, emb = jax.random.normal(kx, (2, 4, 5, c_in), jnp.float64), jax.random.normal(ke, (2, 5), jnp.float64)
        got = np.asarray(res_block(params, x, emb, groups=2))
    p = jax.tree.map(np.asarray, params)
    x, emb = np.asarray(x), np.asarray(emb)
    h = np_conv_same(silu(np_group_norm(x, p["norm_in"], 2)), p["conv_in"]["w"], p["conv_in"]["b"])
    h = h + (silu(emb) @ p["emb"]["w"] + p["emb"]["b"])[:, None, None, :]
    h = np_conv_same(silu(np_group_norm(h, p["norm_out"], 2)), p["conv_out"]["w"], p["conv_out"]["b"])
    skip = np_conv_same(x, p["skip"]["w"], p["skip"]["b"]) if c_in != c_out else x
    assert ("skip" in p) == (c_in != c_out)
    np.testing.assert_allclose(got, skip + h, rtol=1e-10, atol=1e-10)


def test_res_block_starts_as_its_skip_path_and_the_layer_is_the_function():
    lay = ResBlock(4, groups=2)
    x, emb = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 4, 4)), jax.random.normal(jax.random.PRNGKey(3), (3, 7))
    spec, params, _ = lay.init(jax.random.PRNGKey(0), (x, emb))
    assert spec.shape == (3, 4, 4, 4) and not np.any(np.asarray(params["conv_out"]["w"]))
    np.testing.assert_array_equal(np.asarray(lay.apply(params, {}, (x, emb))[0]), np.asarray(x))
    with pytest.raises(ShapeError, match=r"res_block: expected x \(\.\.\., H, W, 4\) and emb \(\.\.\., 7\)"):
        res_block(params, x, emb[:, :5], groups=2)


def test_upsample_and_downsample_shapes_and_values():
    x = np.arange(2 * 3 * 2 * 1, dtype=np.float32).reshape(2, 3, 2, 1)
    np.testing.assert_array_equal(np.asarray(upsample_nearest(jnp.asarray(x))), x.repeat(2, 1).repeat(2, 2))
    up, down = Upsample(5), Downsample(6)
    assert up.init(jax.random.PRNGKey(0), (2, 3, 2, 1))[0].shape == (2, 6, 4, 5)
    assert down.init(jax.random.PRNGKey(0), (2, 7, 8, 1))[0].shape == (2, 4, 4, 6)


def test_unet_predicts_zeros_at_init_and_depends_on_x_and_t():
    spec = (jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32))
    out, params, _ = unet((8, 16, 16), attention_at=(2,)).init(jax.random.PRNGKey(0), spec)
    assert out.shape == (2, 28, 28, 1) and "attn2" in params
    x, t = jax.random.normal(jax.random.PRNGKey(1), (2, 28, 28, 1)), jnp.array([3, 900])
    # applied compiled (one program per input shape), as a step runs it: op by op the test took 18 s, now 12
    assert not np.any(np.asarray(jax.jit(unet((8, 16, 16)).apply)(params, {}, (x, t))[0]))   # zero-init output conv
    net = unet((8, 16), attention_at=(), zero_init=False)
    _, params, _ = net.init(jax.random.PRNGKey(0), (jax.ShapeDtypeStruct((2, 7, 9, 1), jnp.float32), spec[1]))
    apply = jax.jit(net.apply)
    f = lambda x, t: np.asarray(apply(params, {}, (x, t))[0])
    x = x[:, :7, :9]
    assert f(x, t).shape == (2, 7, 9, 1)   # odd sizes: the upsampled map is cropped to the skip's
    assert np.abs(f(x, t) - f(x, t[::-1])).max() > 1e-4 and np.abs(f(x, t) - f(x * 2, t)).max() > 1e-4
    np.testing.assert_allclose(f(x[:1], t[:1])[0], f(x, t)[0], atol=1e-5)   # examples do not mix


def test_unet_refuses_float_timesteps_and_bad_levels():
    net = unet((8, 16), attention_at=())
    _, params, _ = net.init(jax.random.PRNGKey(0), (jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32),
                                                    jax.ShapeDtypeStruct((2,), jnp.int32)))
    with pytest.raises(ShapeError, match=r"unet: expected integer labels of shape \(2,\) .* got float32 \(2,\)"):
        net.apply(params, {}, (jnp.zeros((2, 8, 8, 1)), jnp.zeros((2,))))
    with pytest.raises(ValueError, match=r"unet: expected channels divisible by groups=8 .* got channels=\(8, 12\)"):
        unet((8, 12))
    with pytest.raises(ValueError, match="attention_at=\\(2,\\)"):
        unet((8, 16), attention_at=(2,))
