"""Conv and ConvTranspose against jax.lax references, output shapes for every padding x stride, shape errors."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from deepcore import layers as L
from deepcore.core import ShapeError

KEY = jax.random.PRNGKey(0)
DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}
SIZES = {1: (7,), 2: (7, 6), 3: (5, 4, 6)}
KERNELS = {1: (3,), 2: (3, 2), 3: (2, 3, 1)}


def conv_out_size(n, k, s, d, padding):
    kd = (k - 1) * d + 1
    if padding == "SAME":
        return math.ceil(n / s)
    if padding == "VALID":
        return math.ceil((n - kd + 1) / s)
    lo, hi = (padding, padding) if isinstance(padding, int) else padding[0]
    return (n + lo + hi - kd) // s + 1


def lax_padding(padding, rank):
    if isinstance(padding, str):
        return padding
    return [(padding, padding)] * rank if isinstance(padding, int) else list(padding)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_matches_lax_and_output_size_formula(rank):
    size, kernel = SIZES[rank], KERNELS[rank]
    x = jax.random.normal(jax.random.PRNGKey(1), (2,) + size + (4,))
    for padding, stride, dilation, groups in itertools.product(["SAME", "VALID", 1, ((2, 0),) * rank], [1, 2], [1, 2], [1, 2]):
        lay = L.Conv(6, kernel, strides=stride, padding=padding, dilation=dilation, groups=groups)
        expected = tuple(conv_out_size(n, k, stride, dilation, padding) for n, k in zip(size, kernel))
        if min(expected) < 1:  # the dilated kernel is larger than the padded input: refused, not an empty map
            with pytest.raises(ShapeError, match="expected spatial dims of at least"):
                lay.init(KEY, x)
            continue
        spec, params, _ = lay.init(KEY, x)
        assert params["w"].shape == kernel + (4 // groups, 6)
        y, _ = lay.apply(params, {}, x)
        ref = lax.conv_general_dilated(x, params["w"], (stride,) * rank, lax_padding(padding, rank),
                                       rhs_dilation=(dilation,) * rank, dimension_numbers=DIMS[rank],
                                       feature_group_count=groups) + params["b"][(None,) * (rank + 1)]
        what = f"padding={padding} stride={stride} dilation={dilation} groups={groups}"
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=what)
        assert y.shape == (2,) + expected + (6,) == spec.shape, what


def test_conv_accepts_any_leading_batch_dims():
    lay = L.Conv2D(3, 3, strides=2)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 5, 5, 2))
    _, params, _ = lay.init(KEY, x)
    y, _ = lay.apply(params, {}, x)
    assert y.shape == (2, 3, 3, 3, 3)
    single, _ = lay.apply(params, {}, x[1, 2])
    np.testing.assert_allclose(y[1, 2], single, rtol=1e-5, atol=1e-5)


def test_conv_transpose_output_size_formula():
    x = jnp.ones((1, 4, 2))
    for k, s, d in itertools.product([1, 2, 3, 4], [1, 2, 3], [1, 2]):
        kd = (k - 1) * d + 1
        y, _ = L.ConvTranspose1D(3, k, strides=s, dilation=d, padding="SAME").init(KEY, x)[0:1] + (None,)
        assert y.shape == (1, 4 * s, 3)
        y = L.ConvTranspose1D(3, k, strides=s, dilation=d, padding="VALID").init(KEY, x)[0]
        assert y.shape == (1, 4 * s + max(kd - s, 0), 3)
    # SAME with stride 2 doubles an image
    assert L.ConvTranspose2D(8, 3, strides=2).init(KEY, (2, 7, 5, 3))[0].shape == (2, 14, 10, 8)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_transpose_matches_lax(rank):
    size, kernel = SIZES[rank], KERNELS[rank]
    x = jax.random.normal(jax.random.PRNGKey(1), (2,) + size + (3,))
    for padding, stride, dilation in itertools.product(["SAME", "VALID", ((1, 2),) * rank], [1, 2], [1, 2]):
        lay = L.ConvTranspose(4, kernel, strides=stride, padding=padding, dilation=dilation)
        spec, params, _ = lay.init(KEY, x)
        y, _ = lay.apply(params, {}, x)
        ref = lax.conv_transpose(x, params["w"], (stride,) * rank, lax_padding(padding, rank),
                                 rhs_dilation=(dilation,) * rank,
                                 dimension_numbers=DIMS[rank]) + params["b"][(None,) * (rank + 1)]
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=f"{padding} {stride} {dilation}")
        assert spec.shape == y.shape


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x), u> == <x, conv_transpose(u)> for the same kernel, flipped and with in/out swapped
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 8, 8, 2))
    conv = L.Conv2D(3, 3, strides=2, use_bias=False)
    _, params, _ = conv.init(KEY, x)
    y, vjp = jax.vjp(lambda x: conv.apply(params, {}, x)[0], x)
    u = jax.random.normal(jax.random.PRNGKey(2), y.shape)
    w_t = jnp.flip(params["w"], (0, 1)).swapaxes(2, 3)
    xt, _ = L.ConvTranspose2D(2, 3, strides=2, use_bias=False).apply({"w": w_t}, {}, u)
    np.testing.assert_allclose(xt, vjp(u)[0], rtol=1e-5, atol=1e-5)


def test_shape_errors_name_the_path_and_both_shapes():
    model = L.serial(L.Conv2D(4, 3), L.Conv2D(4, 3))
    _, params, state = model.init(KEY, (8, 28, 28, 3))
    with pytest.raises(ShapeError) as e:
        model.apply(params, state, jnp.ones((8, 28, 28, 1)))
    assert str(e.value) == "serial/conv_0: expected input with 3 channels (..., H, W, 3), got (8, 28, 28, 1)"
    params["conv_1"]["w"] = jnp.ones((3, 3, 5, 4))  # a second layer built for 5 channels
    with pytest.raises(ShapeError) as e:
        model.apply(params, state, jnp.ones((8, 28, 28, 3)))
    assert str(e.value) == "serial/conv_1: expected input with 5 channels (..., H, W, 5), got (8, 28, 28, 4)"
    with pytest.raises(ShapeError, match=r"serial/conv_0: expected input of shape \(\.\.\., D, H, W, C\) "
                                         r"with at least 4 dims, got \(28, 28, 3\)"):
        L.serial(L.Conv3D(2, 3)).init(KEY, (28, 28, 3))
    with pytest.raises(ShapeError, match=r"conv: expected input channels divisible by groups=2 .*\(8, 5, 5, 3\)"):
        L.Conv2D(4, 3, groups=2).init(KEY, (8, 5, 5, 3))
    with pytest.raises(ValueError, match="features=3 must be divisible by groups=2"):
        L.Conv2D(3, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size must be an int or 2 ints"):
        L.Conv2D(3, (3, 3, 3))
