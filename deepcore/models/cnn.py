"""VGG-style CNN: stages of 3x3 convolutions (each ``conv -> [BatchNorm] -> ReLU``), a 2x2 max-pool after each
stage but the last, then a global average pool or a flattening dense head. ``(..., H, W, C) -> (..., num_classes)``.

``VGG(10, stages=((32,), (64, 64), (128, 128)))`` on 28x28x1: 28x28x32 -> pool -> 14x14x64 -> pool -> 7x7x128 ->
global average pool -> dense 10. params: ``{"stage_0": {"conv_0": {"w": (3, 3, 1, 32)}, "batch_norm_0": {"scale",
"bias"}}, ..., "head": {"dense_0": {"w": (128, 10), "b"}}}``; state holds the BatchNorm running statistics.
"""
from typing import Sequence

from deepcore import initializers
from deepcore.core import Layer
from deepcore.layers.basic import Flatten, Relu
from deepcore.layers.combinators import serial
from deepcore.layers.conv import Conv
from deepcore.layers.dense import Dense
from deepcore.layers.dropout import Dropout
from deepcore.layers.norm import BatchNorm
from deepcore.layers.pool import GlobalAvgPool, MaxPool


def conv_bn_relu(features: int, *, batch_norm: bool = True, momentum: float = 0.9, axis_name=None,
                 strides=1, kernel_size=(3, 3), param_dtype=None, dtype=None) -> list:
    """``[conv, batch_norm, relu]`` (the conv has no bias when a BatchNorm follows)."""
    conv = Conv(features, kernel_size, strides=strides, use_bias=not batch_norm, w_init=initializers.he_normal(),
                param_dtype=param_dtype, dtype=dtype)
    bn = [BatchNorm(momentum=momentum, axis_name=axis_name, param_dtype=param_dtype, dtype=dtype)] if batch_norm else []
    return [conv, *bn, Relu]


def VGG(num_classes: int, stages: Sequence[Sequence[int]] = ((32,), (64, 64), (128, 128)), *,
        batch_norm: bool = True, momentum: float = 0.9, head: str = "avg", hidden: Sequence[int] = (),
        dropout: float = 0.0, axis_name=None, param_dtype=None, dtype=None) -> Layer:
    """``stages``: conv widths per stage; a 2x2 max-pool follows every stage but the last.

    ``head``: ``"avg"`` (global average pool) or ``"flatten"``; then ``hidden`` dense+ReLU layers, ``dropout``
    before each dense layer of the head, and the logits layer. ``momentum``: BatchNorm running-average decay
    (0.9 suits short runs). ``axis_name``: BatchNorm's cross-device axis (not needed under ``jax.jit`` sharding).
    """
    if head not in ("avg", "flatten"):
        raise ValueError(f"vgg: head must be 'avg' or 'flatten', got {head!r}")
    kw = dict(batch_norm=batch_norm, momentum=momentum, axis_name=axis_name, param_dtype=param_dtype, dtype=dtype)
    named = {}
    for i, widths in enumerate(stages):
        layers = [l for w in widths for l in conv_bn_relu(w, **kw)]
        if i < len(stages) - 1:
            layers.append(MaxPool((2, 2)))
        named[f"stage_{i}"] = serial(*layers)
    top = [GlobalAvgPool()] if head == "avg" else [Flatten(-3)]
    for w in hidden:
        top += ([Dropout(dropout)] if dropout else []) + [
            Dense(w, w_init=initializers.he_normal(), param_dtype=param_dtype, dtype=dtype), Relu]
    top += ([Dropout(dropout)] if dropout else []) + [Dense(num_classes, param_dtype=param_dtype, dtype=dtype)]
    named["head"] = serial(*top)
    return serial(named)


__all__ = ["VGG", "conv_bn_relu"]
