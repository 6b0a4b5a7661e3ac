"""Multilayer perceptron: ``(..., *features) -> (..., num_classes)``.

``MLP(10, widths=(512, 512), feature_dims=3)`` on ``(B, 28, 28, 1)`` images flattens each image to 784
values, then ``dense -> activation [-> dropout]`` per hidden width and a final dense layer (the logits).
params: ``{"dense_0": {"w": (784, 512), "b": (512,)}, "dense_1": ..., "dense_2": {"w": (512, 10), "b": (10,)}}``.
"""
from typing import Sequence

from deepcore import initializers
from deepcore.core import Layer
from deepcore.layers.basic import Flatten, Relu
from deepcore.layers.combinators import serial
from deepcore.layers.dense import Dense
from deepcore.layers.dropout import Dropout


def MLP(num_classes: int, widths: Sequence[int] = (512, 512), *, activation: Layer = Relu, dropout: float = 0.0,
        input_dropout: float = 0.0, feature_dims: int = 1, w_init=initializers.he_normal(),
        b_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """A stack of dense layers with ``activation`` (a layer, e.g. ``layers.Gelu``) between them.

    ``widths``: hidden layer sizes (depth = ``len(widths)``). ``dropout``: drop rate after each hidden
    activation; ``input_dropout``: on the flattened input. ``feature_dims``: how many trailing input dims
    make one example (3 for ``(..., H, W, C)`` images); they are flattened first. Any leading dims are batch.
    """
    kw = dict(w_init=w_init, b_init=b_init, param_dtype=param_dtype, dtype=dtype)
    layers = [Flatten(-feature_dims)] if feature_dims > 1 else []
    if input_dropout:
        layers.append(Dropout(input_dropout))
    for w in widths:
        layers += [Dense(w, **kw), activation]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(num_classes, **dict(kw, w_init=initializers.glorot_uniform())))
    return serial(*layers)


__all__ = ["MLP"]
