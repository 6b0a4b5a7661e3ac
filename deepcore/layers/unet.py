"""U-Net parts of a diffusion model: a residual block conditioned on a time embedding, down and up blocks.

    p = init_res_block(key, c_in=32, c_out=64, emb_dim=128)
    y = res_block(p, x, emb, groups=8)           # x (B, H, W, 32), emb (B, 128) -> (B, H, W, 64)
    down, up = Downsample(64), Upsample(32)      # (B, H, W, C) -> (B, H/2, W/2, 64); -> (B, 2H, 2W, 32)

``res_block`` is DDPM's (Ho et al., 2020): ``h = conv(silu(gn(x)))``, plus ``dense(silu(emb))`` broadcast over
the positions, ``h = conv(silu(gn(h)))``; the output is ``skip(x) + h`` with ``skip`` a 1x1 convolution when the
channel count changes (the identity otherwise). The second convolution starts at zero, so each block starts
as its skip path. ``ResBlock`` is its layer on an ``(x, emb)`` pair of arrays.
"""
import jax
import jax.numpy as jnp

from deepcore import initializers as I
from deepcore.core import Layer, ShapeError, as_spec, compute_dtype_for, output_spec
from deepcore.layers.basic import Lambda
from deepcore.layers.combinators import serial
from deepcore.layers.conv import Conv2D, conv
from deepcore.layers.dense import AXES as DENSE_AXES, Dense, dense
from deepcore.layers.norm import AXES as NORM_AXES, group_norm, init_norm


def _params(lay, key, shape, dtype):
    return lay.init(key, jax.ShapeDtypeStruct(shape, dtype))[1]


def init_res_block(key, c_in: int, c_out: int, emb_dim: int, dtype=jnp.float32, *,
                   zero_init: bool = True) -> dict:
    """Parameters of :func:`res_block`: ``norm_in, conv_in (3x3, c_in -> c_out), emb (emb_dim -> c_out),
    norm_out, conv_out (3x3; zero-initialised when zero_init)`` and ``skip`` (1x1) when ``c_in != c_out``."""
    k = jax.random.split(key, 4)
    last = I.zeros if zero_init else I.he_normal()
    p = {"norm_in": init_norm(c_in, dtype),
         "conv_in": _params(Conv2D(c_out, 3, w_init=I.he_normal()), k[0], (1, 3, 3, c_in), dtype),
         "emb": _params(Dense(c_out), k[1], (1, emb_dim), dtype),
         "norm_out": init_norm(c_out, dtype),
         "conv_out": _params(Conv2D(c_out, 3, w_init=last), k[2], (1, 3, 3, c_out), dtype)}
    if c_in != c_out:
        p["skip"] = _params(Conv2D(c_out, 1), k[3], (1, 1, 1, c_in), dtype)
    return p


def res_block(params, x, emb, *, groups: int, dtype=None):
    """``x: (..., H, W, c_in)``, ``emb: (..., emb_dim)`` (the same leading dims) -> ``(..., H, W, c_out)``."""
    c_in, e_in = params["conv_in"]["w"].shape[-2], params["emb"]["w"].shape[0]
    if x.shape[-1] != c_in or emb.shape[-1] != e_in or x.shape[:-3] != emb.shape[:-1]:
        raise ShapeError(f"res_block: expected x (..., H, W, {c_in}) and emb (..., {e_in}) with the same leading "
                         f"dims, got {tuple(x.shape)} and {tuple(emb.shape)}")
    cdt = compute_dtype_for(x.dtype, dtype)
    x = x.astype(cdt)
    h = conv(params["conv_in"], jax.nn.silu(group_norm(params["norm_in"], x, num_groups=groups)), dtype=cdt)
    h = h + dense(params["emb"], jax.nn.silu(emb.astype(cdt)), dtype=cdt)[..., None, None, :]
    h = conv(params["conv_out"], jax.nn.silu(group_norm(params["norm_out"], h, num_groups=groups)), dtype=cdt)
    return (conv(params["skip"], x, dtype=cdt) if "skip" in params else x) + h


CONV_AXES = {"w": ("kernel", "kernel", "conv_in", "conv_out"), "b": ("conv_out",)}
AXES = {"norm_in": NORM_AXES, "conv_in": CONV_AXES, "emb": DENSE_AXES, "norm_out": NORM_AXES, "conv_out": CONV_AXES,
        "skip": CONV_AXES}   # logical axis names of res_block's parameters (deepcore.layers.logical)


def ResBlock(features: int, *, groups: int = 8, zero_init: bool = True) -> Layer:
    """The layer of :func:`res_block` on the pair ``(x (..., H, W, C), emb (..., E))`` -> ``(..., H, W, features)``.

    ``groups`` must divide ``C`` and ``features``. (A pair of float arrays: build it inside a model's ``apply``;
    the catalog feeds it through a one-input harness.)"""

    def init(key, spec):
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
            raise ShapeError(f"res_block: expected an (x, emb) pair, got {spec!r}")
        xs, es = as_spec(spec[0]), as_spec(spec[1])
        if len(xs.shape) < 3 or xs.shape[-1] % groups or features % groups:
            raise ShapeError(f"res_block: expected x (..., H, W, C) with C and features={features} divisible by "
                             f"groups={groups}, got {tuple(xs.shape)}")
        dt = xs.dtype if xs.dtype in (jnp.float32, jnp.float64) else jnp.float32
        params = init_res_block(key, xs.shape[-1], features, es.shape[-1], dt, zero_init=zero_init)
        return output_spec(apply, params, {}, (xs, es)), params, {}

    def apply(params, state, xe, *, key=None, train=False):
        return res_block(params, xe[0], xe[1], groups=groups), state

    return Layer(init, apply, "res_block", axes=AXES)


def upsample_nearest(x, factor: int = 2):
    """``(..., H, W, C) -> (..., factor * H, factor * W, C)``, each pixel repeated."""
    return jnp.repeat(jnp.repeat(x, factor, axis=-3), factor, axis=-2)


def Downsample(features: int) -> Layer:
    """``(..., H, W, C) -> (..., ceil(H/2), ceil(W/2), features)``: a 3x3 convolution with stride 2."""
    return Conv2D(features, 3, strides=2)


def Upsample(features: int) -> Layer:
    """``(..., H, W, C) -> (..., 2H, 2W, features)``: nearest-neighbour upsampling, then a 3x3 convolution."""
    return serial({"nearest": Lambda(upsample_nearest, "upsample_nearest"), "conv": Conv2D(features, 3)})


__all__ = ["init_res_block", "res_block", "ResBlock", "upsample_nearest", "Downsample", "Upsample"]
