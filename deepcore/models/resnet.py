"""ResNet with basic blocks (He et al., 2016), sized for 28x28 and 32x32 inputs: ``(..., H, W, C) -> (..., classes)``.

Stem: one 3x3 conv (stride 1) -> BatchNorm -> ReLU. Then stages of basic blocks
``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``; the first block of every stage but the first has
stride 2, and a 1x1 conv + BatchNorm shortcut wherever the shape changes. Global average pool and a dense head.
``ResNet(10, widths=(16, 32, 64), depths=(3, 3, 3))`` is ResNet-20; (16, 32, 64) spatial 32 -> 16 -> 8.

params: ``{"stem": {"conv_0", "batch_norm_0"}, "stage_0": {"block_0": {"conv_0", "batch_norm_0", "conv_1",
"batch_norm_1"[, "shortcut": {"conv_0", "batch_norm_0"}]}, ...}, ..., "head": {"w", "b"}}``; state: the
BatchNorms' running statistics under the same paths.
"""
from typing import Sequence

import jax

from deepcore import initializers
from deepcore.core import Layer, layer, output_spec
from deepcore.layers.basic import Relu
from deepcore.layers.combinators import serial
from deepcore.layers.logical import logical_axes
from deepcore.layers.conv import Conv
from deepcore.layers.dense import Dense
from deepcore.layers.norm import BatchNorm
from deepcore.layers.pool import GlobalAvgPool


def BasicBlock(features: int, *, strides: int = 1, momentum: float = 0.9, axis_name=None, param_dtype=None,
               dtype=None) -> Layer:
    """``(..., H, W, C) -> (..., H/strides, W/strides, features)``; a projection shortcut when the shape changes."""
    conv = lambda f, k, s: Conv(f, (k, k), strides=s, use_bias=False, w_init=initializers.he_normal(),
                                param_dtype=param_dtype, dtype=dtype)
    bn = lambda: BatchNorm(momentum=momentum, axis_name=axis_name, param_dtype=param_dtype, dtype=dtype)
    body = serial(conv(features, 3, strides), bn(), Relu, conv(features, 3, 1), bn())
    proj = serial(conv(features, 1, strides), bn())

    def needs_proj(shape):
        return strides != 1 or shape[-1] != features

    def init(key, spec):
        kb, kp = jax.random.split(key)
        _, params, state = body.init(kb, spec)
        if needs_proj(spec.shape):
            _, pp, ps = proj.init(kp, spec)
            params, state = dict(params, shortcut=pp), dict(state, shortcut=ps)
        return output_spec(apply, params, state, spec), params, state

    def apply(params, state, x, *, key=None, train=False):
        inner = {k: v for k, v in params.items() if k != "shortcut"}
        inner_s = {k: v for k, v in state.items() if k != "shortcut"}
        y, new_state = body.apply(inner, inner_s, x, train=train)
        if "shortcut" in params:
            s, ss = proj.apply(params["shortcut"], state["shortcut"], x, train=train)
            new_state = dict(new_state, shortcut=ss)
        else:
            s = x.astype(y.dtype)
        return jax.nn.relu(y + s), new_state

    def axes(params):   # the body's parameters sit at the top level of the block's, beside "shortcut"
        out = logical_axes(body, params={k: v for k, v in params.items() if k != "shortcut"})
        return dict(out, shortcut=logical_axes(proj, params=params["shortcut"])) if "shortcut" in params else out

    return layer("block", init, apply, (("body", body), ("shortcut", proj)), axes=axes)


def ResNet(num_classes: int, widths: Sequence[int] = (16, 32, 64), depths: Sequence[int] = (3, 3, 3), *,
           stem_width=None, momentum: float = 0.9, axis_name=None, param_dtype=None, dtype=None) -> Layer:
    """``widths``/``depths``: features and number of basic blocks per stage. ``stem_width`` defaults to
    ``widths[0]``. Works for any input size (28x28 and 32x32 included); each stage after the first halves H, W."""
    if len(widths) != len(depths) or not widths:
        raise ValueError(f"resnet: widths {tuple(widths)} and depths {tuple(depths)} need the same nonzero length")
    kw = dict(momentum=momentum, axis_name=axis_name, param_dtype=param_dtype, dtype=dtype)
    named = {"stem": serial(Conv(stem_width or widths[0], (3, 3), use_bias=False, w_init=initializers.he_normal(),
                                 param_dtype=param_dtype, dtype=dtype),
                            BatchNorm(**kw), Relu)}
    for i, (w, d) in enumerate(zip(widths, depths)):
        blocks = [BasicBlock(w, strides=2 if (i > 0 and j == 0) else 1, **kw) for j in range(d)]
        named[f"stage_{i}"] = serial(*blocks)
    named["pool"] = GlobalAvgPool()
    named["head"] = Dense(num_classes, param_dtype=param_dtype, dtype=dtype)
    return serial(named)


__all__ = ["ResNet", "BasicBlock"]
