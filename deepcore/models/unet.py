"""A small U-Net for diffusion: ``(x (B, H, W, C), t (B,) int timesteps) -> (B, H, W, C)`` (the predicted noise).

    net = unet(channels=(32, 64, 64), attention_at=(2,))       # levels at 28, 14, 7 for 28x28 inputs
    out_spec, params, state = net.init(key, (x_spec, t_spec))  # t_spec: int32 (B,)
    eps, _ = net.apply(params, state, (x, t))

Layout: ``conv_in`` (3x3) to ``channels[0]``; down path: per level ``blocks`` :func:`res_block`\\ s to
``channels[i]`` (the output kept as the level's skip), then a stride-2 3x3 conv (not after the last level);
middle: a residual block, at levels in ``attention_at`` a residual self-attention over the positions, a
residual block; up path, from the deepest level: the skip concatenated, ``blocks`` residual blocks to
``channels[i]``, then nearest upsampling and a 3x3 conv to ``channels[i - 1]``; ``gn - silu - conv_out``
(zero-initialised) back to ``C``. Every block reads the same ``time_embedding`` of ``t`` (``channels[0]``
sinusoidal features, width ``4 * channels[0]``).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from deepcore.core import ShapeError, layer, output_spec
from deepcore import initializers as I
from deepcore.layers.attention import AXES as ATTENTION_AXES, init_attention, self_attention
from deepcore.layers.conv import Conv2D, conv
from deepcore.layers.norm import AXES as NORM_AXES, group_norm, init_norm
from deepcore.layers.time_embedding import AXES as TIME_AXES, init_time_embedding, time_embedding
from deepcore.layers.unet import AXES as RES_AXES, CONV_AXES, init_res_block, res_block, upsample_nearest


def _conv_params(key, c_in, c_out, dtype, w_init=I.glorot_uniform(), k=3, strides=1):
    return Conv2D(c_out, k, strides=strides, w_init=w_init).init(key, jax.ShapeDtypeStruct((1, 4, 4, c_in), dtype))[1]


def unet_axes(params) -> dict:
    """Logical axis names of :func:`unet`'s parameters, by their keys (deepcore.layers.logical)."""
    def of(k):
        if k == "time":
            return TIME_AXES
        if k.startswith("attn"):
            return {"norm": NORM_AXES, **ATTENTION_AXES}
        if k in ("conv_in", "conv_out") or k.endswith("_conv"):
            return CONV_AXES
        return NORM_AXES if k == "norm_out" else RES_AXES
    return {k: of(k) for k in params}


def _init_params(key, c_img: int, channels, blocks: int, attention_at, heads: int, dt, zero_init: bool) -> dict:
    """The parameters of :func:`unet` for ``c_img`` image channels (keys: ``time``, ``conv_in``, ``down{i}_{b}``,
    ``down{i}_conv``, ``mid_0/1``, ``attn{i}``, ``up{i}_{b}``, ``up{i}_conv``, ``norm_out``, ``conv_out``)."""
    emb_dim, levels = 4 * channels[0], len(channels)
    keys = iter(jax.random.split(key, 8 + 4 * levels * (blocks + 2)))
    p = {"time": init_time_embedding(next(keys), emb_dim, channels[0], dt),
         "conv_in": _conv_params(next(keys), c_img, channels[0], dt)}
    c = channels[0]
    for i, ci in enumerate(channels):
        for b in range(blocks):
            p[f"down{i}_{b}"], c = init_res_block(next(keys), c, ci, emb_dim, dt, zero_init=zero_init), ci
        if i < levels - 1:
            p[f"down{i}_conv"] = _conv_params(next(keys), c, c, dt, strides=2)
    p["mid_0"] = init_res_block(next(keys), c, c, emb_dim, dt, zero_init=zero_init)
    p["mid_1"] = init_res_block(next(keys), c, c, emb_dim, dt, zero_init=zero_init)
    for i in attention_at:
        p[f"attn{i}"] = {"norm": init_norm(channels[i], dt),
                         **init_attention(next(keys), channels[i], heads, dtype=dt)}
    for i in reversed(range(levels)):
        for b in range(blocks):
            p[f"up{i}_{b}"] = init_res_block(next(keys), c + (channels[i] if b == 0 else 0), channels[i],
                                             emb_dim, dt, zero_init=zero_init)
            c = channels[i]
        if i > 0:
            p[f"up{i}_conv"], c = _conv_params(next(keys), c, channels[i - 1], dt), channels[i - 1]
    p["norm_out"] = init_norm(c, dt)
    p["conv_out"] = _conv_params(next(keys), c, c_img, dt, w_init=I.zeros if zero_init else I.he_normal())
    return p


def _attend(p, h, groups: int, heads: int):
    """A residual self-attention over the ``H * W`` positions of ``h (..., H, W, C)``."""
    a = group_norm(p["norm"], h, num_groups=groups)
    a = self_attention(p, a.reshape(h.shape[:-3] + (-1, h.shape[-1])), num_heads=heads)[0]
    return h + a.reshape(h.shape)


def unet(channels: Sequence[int] = (32, 64, 64), *, blocks: int = 1, attention_at: Sequence[int] = (2,),
         groups: int = 8, heads: int = 4, zero_init: bool = True):
    """The U-Net layer described in the module docstring; ``groups`` divides every channel count; ``zero_init``
    False starts the residual blocks' last convs and ``conv_out`` random instead of at zero (for tests)."""
    channels, attention_at = tuple(channels), tuple(attention_at)
    levels = len(channels)
    if any(c % groups for c in channels) or any(not 0 <= a < levels for a in attention_at):
        raise ValueError(f"unet: expected channels divisible by groups={groups} and attention levels in "
                         f"[0, {levels}), got channels={channels}, attention_at={attention_at}")

    def init(key, spec):
        xs, _ = spec
        if len(xs.shape) < 3:
            raise ShapeError(f"expected x (..., H, W, C), got {tuple(xs.shape)}")
        dt = xs.dtype if xs.dtype in (jnp.float32, jnp.float64) else jnp.float32
        p = _init_params(key, xs.shape[-1], channels, blocks, attention_at, heads, dt, zero_init)
        return output_spec(lambda p_, s_, xt, **kw: apply(p_, s_, *xt, **kw), p, {}, spec), p, {}

    def apply(params, state, x, t, *, key=None, train=False):
        emb = time_embedding(params["time"], t, dim=channels[0], dtype=x.dtype)
        h, skips = conv(params["conv_in"], x), []
        for i in range(levels):
            for b in range(blocks):
                h = res_block(params[f"down{i}_{b}"], h, emb, groups=groups)
            if i in attention_at:
                h = _attend(params[f"attn{i}"], h, groups, heads)
            skips.append(h)
            if i < levels - 1:
                h = conv(params[f"down{i}_conv"], h, strides=2)
        h = res_block(params["mid_1"], res_block(params["mid_0"], h, emb, groups=groups), emb, groups=groups)
        for i in reversed(range(levels)):
            h = jnp.concatenate([h, skips[i]], axis=-1)
            for b in range(blocks):
                h = res_block(params[f"up{i}_{b}"], h, emb, groups=groups)
            if i > 0:
                h = upsample_nearest(h)[..., :skips[i - 1].shape[-3], :skips[i - 1].shape[-2], :]
                h = conv(params[f"up{i}_conv"], h)
        h = jax.nn.silu(group_norm(params["norm_out"], h, num_groups=groups))
        return conv(params["conv_out"], h).astype(x.dtype), state

    return layer("unet", init, apply, pair_x_rank=3, axes=unet_axes)


__all__ = ["unet"]
