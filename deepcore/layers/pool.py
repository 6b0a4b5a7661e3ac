"""Pooling over channels-last inputs ``(..., *spatial, C)``: max/average windows and global pools, each a function
(:func:`max_pool`, :func:`avg_pool`, :func:`global_avg_pool`, :func:`global_max_pool`) and its layer.

Window pools take their rank from ``len(window)``; ``MaxPool2D(2)`` style aliases take an int. Any number
of leading batch dims is accepted, including none.
"""
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from deepcore.core import Layer, ShapeError, layer, left_expand, simple_init
from deepcore.layers.conv import Padding, _padding, _tuple, check_window_fits, layout


def _check_rank(x, rank):
    if x.ndim < rank + 1:
        raise ShapeError(f"expected input of shape {layout(rank)} with at least {rank + 1} dims, got {tuple(x.shape)}")


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max(x, axes: tuple):
    """``x.max(axis=axes)`` whose derivative flows to the first maximal entry of each reduced slice.

    ``jnp.max``'s derivative is the mask ``x == max(x)``; XLA:CPU may recompute ``x`` (e.g. ``y - mean``) in
    two kernels, one of them contracted into an FMA, so the mask can hold no winner or several (per-example
    gradients off by 0.5-5x: issue 17, tests/layers/test_pool_miscompile.py). One ``argmax`` picks one winner.
    """
    return x.max(axis=axes)


@_max.defjvp
def _max_jvp(axes, primals, tangents):
    (x,), (t,) = primals, tangents
    keep = tuple(a for a in range(x.ndim) if a not in axes)
    out = tuple(x.shape[a] for a in keep)
    slices = lambda a: a.transpose(keep + axes).reshape(out + (-1,))   # (*out, k): each reduced slice last
    w = slices(x)
    winner = left_expand(jnp.arange(w.shape[-1]), w.ndim) == jnp.argmax(w, axis=-1)[..., None]
    return x.max(axis=axes), jnp.sum(jnp.where(winner, slices(t), jnp.zeros((), t.dtype)), axis=-1)


def _window(x, window, strides, padding, reduce):
    """``reduce(x, dims, steps, pad)`` over ``window`` on the spatial dims of ``x: (..., *spatial, C)``."""
    window = tuple(int(w) for w in window)
    rank = len(window)
    strides = window if strides is None else _tuple(strides, rank, "strides")
    pad = _padding(padding, rank)
    lead = x.ndim - rank - 1
    dims, steps = (1,) * lead + window + (1,), (1,) * lead + strides + (1,)
    full_pad = pad if isinstance(pad, str) else ((0, 0),) * lead + pad + ((0, 0),)
    return reduce(x, dims, steps, full_pad)


def _max_reduce(x, dims, steps, pad):
    unpadded = pad == "VALID" if isinstance(pad, str) else not any(lo or hi for lo, hi in pad)
    if dims == steps and unpadded and all(n % d == 0 for n, d in zip(x.shape, dims)):
        tiles = sum(((n // d, d) for n, d in zip(x.shape, dims)), ())
        return _max(x.reshape(tiles), tuple(range(1, 2 * x.ndim, 2)))
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, steps, pad)


def max_pool(x, window: Sequence[int], strides=None, padding: Padding = "VALID"):
    """Max over ``window`` (rank ``len(window)``) of ``x: (..., *spatial, C)`` -> ``(..., *spatial', C)``;
    see :func:`MaxPool`."""
    return _window(x, window, strides, padding, _max_reduce)


def avg_pool(x, window: Sequence[int], strides=None, padding: Padding = "VALID", count_include_pad: bool = False):
    """Mean over ``window`` (rank ``len(window)``) of ``x: (..., *spatial, C)`` -> ``(..., *spatial', C)``;
    see :func:`AvgPool`."""

    def reduce(x, dims, steps, pad):
        total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, steps, pad)
        if count_include_pad or pad == "VALID":
            return total / jnp.asarray(math.prod(dims), x.dtype)
        ones = jnp.ones(x.shape[x.ndim - len(dims):], x.dtype)
        count = lax.reduce_window(ones, np.array(0, x.dtype), lax.add, dims, steps, pad)
        return total / count

    return _window(x, window, strides, padding, reduce)


def _spatial_axes(x, spatial_rank):
    return tuple(range(x.ndim - 1 - spatial_rank, x.ndim - 1))


def global_avg_pool(x, spatial_rank: int = 2, keepdims: bool = False):
    """Mean over the ``spatial_rank`` spatial dims of ``x: (..., *spatial, C)`` -> ``(..., C)``."""
    return jnp.mean(x, axis=_spatial_axes(x, spatial_rank), keepdims=keepdims)


def global_max_pool(x, spatial_rank: int = 2, keepdims: bool = False):
    """Max over the ``spatial_rank`` spatial dims of ``x: (..., *spatial, C)`` -> ``(..., C)``; the gradient goes
    to the first maximum of each channel (see ``_max``)."""
    axes = _spatial_axes(x, spatial_rank)
    y = _max(x, axes)
    return jnp.expand_dims(y, axes) if keepdims else y


def _pool(name, fn, window, strides, padding, **options):
    window = tuple(int(w) for w in window)
    rank = len(window)
    pad = _padding(padding, rank)
    if strides is not None:
        _tuple(strides, rank, "strides")   # bad strides fail here, not at the first call

    def apply(params, state, x, *, key=None, train=False):
        _check_rank(x, rank)
        check_window_fits(x.shape, window, pad)
        return fn(x, window, strides, padding, **options), state

    return layer(name, simple_init(lambda key, spec: ({}, {}), apply), apply)


def MaxPool(window: Sequence[int], strides=None, padding: Padding = "VALID") -> Layer:
    """The layer of :func:`max_pool`: ``(..., *spatial, C) -> (..., *spatial', C)``; ``strides`` default to ``window``.

    Padding as in :func:`deepcore.layers.Conv` (a window larger than the padded input is a ``ShapeError``);
    padded positions never win (they hold ``-inf``).
    Windows that tile the input exactly (``strides == window``, no padding, sizes divisible) are computed as
    a reshape and a max whose gradient goes to each window's first maximum through one ``argmax`` (the one
    XLA's select-and-scatter picks), elementwise instead of a select-and-scatter: a CNN training step ~13%
    faster on CPU. (``jnp.max``'s own gradient is wrong on XLA:CPU in some programs: see ``_max``.)
    """
    return _pool("max_pool", max_pool, window, strides, padding)


def AvgPool(window: Sequence[int], strides=None, padding: Padding = "VALID", count_include_pad: bool = False) -> Layer:
    """The layer of :func:`avg_pool`: ``(..., *spatial, C) -> (..., *spatial', C)``; ``strides`` default to ``window``.

    With padding, border windows average only the real inputs unless ``count_include_pad`` (then the
    padded zeros count too, PyTorch's default).
    """
    return _pool("avg_pool", avg_pool, window, strides, padding, count_include_pad=count_include_pad)


def _global(name, fn, spatial_rank: int, keepdims: bool) -> Layer:
    def apply(params, state, x, *, key=None, train=False):
        _check_rank(x, spatial_rank)
        return fn(x, spatial_rank, keepdims), state

    return layer(name, simple_init(lambda key, spec: ({}, {}), apply), apply)


def GlobalAvgPool(spatial_rank: int = 2, keepdims: bool = False) -> Layer:
    """The layer of :func:`global_avg_pool`: ``(..., *spatial, C) -> (..., C)``."""
    return _global("global_avg_pool", global_avg_pool, spatial_rank, keepdims)


def GlobalMaxPool(spatial_rank: int = 2, keepdims: bool = False) -> Layer:
    """The layer of :func:`global_max_pool`: ``(..., *spatial, C) -> (..., C)``."""
    return _global("global_max_pool", global_max_pool, spatial_rank, keepdims)


def _ranked(make, rank):
    def ctor(window, strides=None, padding: Padding = "VALID", **kwargs) -> Layer:
        return make(_tuple(window, rank, "window"), strides, padding, **kwargs)

    ctor.__name__ = f"{make.__name__}{rank}D"
    ctor.__doc__ = f"{rank}D :func:`{make.__name__}`; ``window`` may be an int."
    return ctor


MaxPool1D, MaxPool2D, MaxPool3D = (_ranked(MaxPool, r) for r in (1, 2, 3))
AvgPool1D, AvgPool2D, AvgPool3D = (_ranked(AvgPool, r) for r in (1, 2, 3))
