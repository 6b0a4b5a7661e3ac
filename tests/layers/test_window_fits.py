"""A VALID (or explicitly padded) convolution or pooling window larger than its input is refused with one line
naming the layer path, the sizes needed and the input shape, instead of giving an empty feature map (issue 17)."""
import re

import jax
import jax.numpy as jnp
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError

KEY = jax.random.PRNGKey(0)

REFUSED = [
    (L.Conv2D(3, 3, padding="VALID"), (2, 2, 5, 1),
     "conv: expected spatial dims of at least (3, 3) (..., H, W, C) for the 3x3 kernel with VALID padding, "
     "got (2, 2, 5, 1)"),
    (L.Conv1D(3, 3, padding="VALID", dilation=2), (2, 4, 1),
     "conv: expected spatial dims of at least (5,) (..., L, C) for the 3 kernel dilated 2 (extent 5) with VALID "
     "padding, got (2, 4, 1)"),
    (L.Conv2D(3, 3, padding=((0, 0), (1, 0))), (2, 1, 1, 1),
     "conv: expected spatial dims of at least (3, 2) (..., H, W, C) for the 3x3 kernel with padding "
     "((0, 0), (1, 0)), got (2, 1, 1, 1)"),
    (L.MaxPool2D(3), (2, 2, 5, 1),
     "max_pool: expected spatial dims of at least (3, 3) (..., H, W, C) for the 3x3 window with VALID padding, "
     "got (2, 2, 5, 1)"),
    (L.AvgPool3D((1, 2, 4), strides=1), (3, 3, 3, 2),
     "avg_pool: expected spatial dims of at least (1, 2, 4) (..., D, H, W, C) for the 1x2x4 window with VALID "
     "padding, got (3, 3, 3, 2)"),
    (L.serial(L.Conv2D(2, 3), L.MaxPool2D(2), L.Conv2D(2, 3, padding="VALID")), (1, 4, 4, 1),
     "serial/conv_1: expected spatial dims of at least (3, 3) (..., H, W, C) for the 3x3 kernel with VALID "
     "padding, got (1, 2, 2, 2)"),
]


@pytest.mark.parametrize("lay,shape,message", REFUSED, ids=[m.split(":")[0] for *_, m in REFUSED])
def test_window_larger_than_input_is_refused_at_init_and_apply(lay, shape, message):
    with pytest.raises(ShapeError, match="^" + re.escape(message) + "$"):
        lay.init(KEY, shape)
    # apply with parameters built for a large enough input says the same
    _, params, state = lay.init(KEY, (8,) * (len(shape) - 1) + shape[-1:])
    with pytest.raises(ShapeError, match="^" + re.escape(message) + "$"):
        lay.apply(params, state, jnp.ones(shape))


@pytest.mark.parametrize("lay,shape,out", [
    (L.Conv2D(3, 3, padding="VALID"), (2, 3, 5, 1), (2, 1, 3, 3)),           # exactly fits: one output row
    (L.Conv2D(3, 3, padding="SAME"), (2, 1, 1, 1), (2, 1, 1, 3)),            # SAME always fits
    (L.Conv2D(3, 3, padding=1), (2, 1, 1, 1), (2, 1, 1, 3)),                 # 1 + 2 pads = 3
    (L.MaxPool2D(3, strides=2), (3, 3, 1), (1, 1, 1)),
    (L.MaxPool2D(3, padding="SAME"), (2, 2, 1), (1, 1, 1)),
    (L.ConvTranspose2D(2, 5, padding="VALID"), (1, 2, 2, 1), (1, 6, 6, 2)),  # a transpose never shrinks
])
def test_windows_that_fit_are_accepted(lay, shape, out):
    assert lay.init(KEY, shape)[0].shape == out
