"""Normalisation over channels-last inputs: the functions :func:`layer_norm`, :func:`rms_norm`, :func:`group_norm`,
:func:`batch_norm` and their layers LayerNorm, RMSNorm, GroupNorm and BatchNorm.

Statistics are computed in at least float32 (a bfloat16 input is normalised with float32 mean and
variance) and the output is returned in the compute dtype. Parameters are ``{"scale": (C,), "bias": (C,)}``,
each optional (absent: not applied).
"""
from typing import Optional

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import (accum_dtype, Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec,
                           param_dtype_for)


def _stat_dtype(cdt):
    return accum_dtype(cdt)


def _affine(y, params, cdt):
    p = cast(params, cdt)
    y = y.astype(cdt)
    if "scale" in p:
        y = y * left_expand(p["scale"], y.ndim)
    if "bias" in p:
        y = y + left_expand(p["bias"], y.ndim)
    return y


def _standardise(x, axes, epsilon):
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + epsilon)


AXES = {"scale": ("norm",), "bias": ("norm",)}   # logical axis names (deepcore.layers.logical)


def init_norm(channels: int, dtype=jnp.float32, *, use_bias: bool = True) -> dict:
    """The identity affine of a norm: ``{"scale": ones (C,), "bias": zeros (C,)}`` (no bias if not ``use_bias``)."""
    params = {"scale": jnp.ones((channels,), dtype)}
    if use_bias:
        params["bias"] = jnp.zeros((channels,), dtype)
    return params


def layer_norm(params, x, *, epsilon: float = 1e-5, dtype=None):
    """Normalise ``x: (..., C)`` over the last axis, then ``* scale + bias``; computed in ``dtype`` (default x's)."""
    cdt = compute_dtype_for(x.dtype, dtype)
    return _affine(_standardise(x.astype(_stat_dtype(cdt)), -1, epsilon), params, cdt)


def rms_norm(params, x, *, epsilon: float = 1e-6, dtype=None):
    """``x / rms(x) * scale`` over the last axis of ``x: (..., C)`` (Zhang & Sennrich, 2019)."""
    cdt = compute_dtype_for(x.dtype, dtype)
    xs = x.astype(_stat_dtype(cdt))
    return _affine(xs * jax.lax.rsqrt(jnp.mean(jnp.square(xs), axis=-1, keepdims=True) + epsilon), params, cdt)


def group_norm(params, x, *, num_groups: int, spatial_rank: int = 2, epsilon: float = 1e-5, dtype=None):
    """Group norm of ``x: (..., *spatial, C)``: each group of ``C // num_groups`` channels normalised over
    its spatial positions and channels, then ``* scale + bias``."""
    cdt = compute_dtype_for(x.dtype, dtype)
    xs = x.astype(_stat_dtype(cdt))
    c = x.shape[-1]
    g = xs.reshape(x.shape[:-1] + (num_groups, c // num_groups))
    axes = tuple(range(x.ndim - 1 - spatial_rank, x.ndim - 1)) + (x.ndim,)   # spatial dims and the group's channels
    return _affine(_standardise(g, axes, epsilon).reshape(x.shape), params, cdt)


def batch_norm(params, state, x, *, train: bool = False, momentum: float = 0.99, epsilon: float = 1e-5,
               axis_name: Optional[str] = None, dtype=None):
    """Batch norm of ``x: (..., C)`` -> ``(y, new_state)``; state ``{"mean", "var"}: (C,)`` running statistics.

    ``train``: normalise with the batch statistics over every axis but the last (``lax.pmean`` over
    ``axis_name`` if given) and update the state by ``momentum``; else use (and return) the state.
    """
    cdt = compute_dtype_for(x.dtype, dtype)
    xs = x.astype(_stat_dtype(cdt))
    if train:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(xs, axis=axes)
        if axis_name is not None:
            mean = jax.lax.pmean(mean, axis_name)
        var = jnp.mean(jnp.square(xs - left_expand(mean, xs.ndim)), axis=axes)
        if axis_name is not None:
            var = jax.lax.pmean(var, axis_name)
        state = {"mean": (momentum * state["mean"] + (1 - momentum) * mean).astype(state["mean"].dtype),
                 "var": (momentum * state["var"] + (1 - momentum) * var).astype(state["var"].dtype)}
    else:
        mean, var = state["mean"].astype(xs.dtype), state["var"].astype(xs.dtype)
    y = (xs - left_expand(mean, xs.ndim)) * left_expand(jax.lax.rsqrt(var + epsilon), xs.ndim)
    return _affine(y, params, cdt), state


# ----------------------------------------------------------------------------- layers

def _affine_params(key, channels, pdt, use_scale, use_bias, scale_init, bias_init):
    ks, kb = jax.random.split(key)
    params = {}
    if use_scale:
        params["scale"] = scale_init(ks, (channels,), pdt)
    if use_bias:
        params["bias"] = bias_init(kb, (channels,), pdt)
    return params


def _check_channels(params, state, x, layout="(..., C)"):
    ref = next(iter(params.values()), None)
    if ref is None:
        ref = next(iter(state.values()), None)
    if ref is not None and (x.ndim < 1 or x.shape[-1] != ref.shape[0]):
        raise ShapeError(f"expected input with {ref.shape[0]} channels {layout}, got {tuple(x.shape)}")


def _norm_layer(name, fn, *, use_scale, use_bias, scale_init, bias_init, param_dtype,
                min_rank=1, layout="(..., C)", check=None) -> Layer:
    """A layer running ``fn(params, x)`` with per-channel scale/bias on the last axis."""

    def init(key, spec):
        if len(spec.shape) < min_rank:
            raise ShapeError(f"expected input of shape {layout} with at least {min_rank} dims, got {tuple(spec.shape)}")
        if check is not None:
            check(spec.shape)
        pdt = param_dtype_for(spec.dtype, param_dtype)
        params = _affine_params(key, spec.shape[-1], pdt, use_scale, use_bias, scale_init, bias_init)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        _check_channels(params, {}, x, layout)
        if x.ndim < min_rank:
            raise ShapeError(f"expected input of shape {layout} with at least {min_rank} dims, got {tuple(x.shape)}")
        if check is not None:
            check(x.shape)
        return fn(params, x), state

    return layer(name, init, apply, axes=AXES)


def LayerNorm(*, epsilon: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
              scale_init=initializers.ones, bias_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`layer_norm`, ``(..., C) -> (..., C)``, scale and bias each ``(C,)``.

    ``epsilon`` defaults to 1e-5 (PyTorch's default; flax uses 1e-6).
    """
    return _norm_layer("layer_norm", lambda p, x: layer_norm(p, x, epsilon=epsilon, dtype=dtype), use_scale=use_scale,
                       use_bias=use_bias, scale_init=scale_init, bias_init=bias_init, param_dtype=param_dtype)


def RMSNorm(*, epsilon: float = 1e-6, use_scale: bool = True, scale_init=initializers.ones,
            param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`rms_norm`, ``(..., C) -> (..., C)``, scale ``(C,)``."""
    return _norm_layer("rms_norm", lambda p, x: rms_norm(p, x, epsilon=epsilon, dtype=dtype), use_scale=use_scale,
                       use_bias=False, scale_init=scale_init, bias_init=None, param_dtype=param_dtype)


def GroupNorm(num_groups: int = 32, *, spatial_rank: int = 2, epsilon: float = 1e-5, use_scale: bool = True,
              use_bias: bool = True, scale_init=initializers.ones, bias_init=initializers.zeros,
              param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`group_norm` (Wu & He, 2018) on ``(..., *spatial, C)``, ``len(spatial) == spatial_rank``.

    Dims before the ``spatial_rank`` spatial dims are batch dims (any number, including none).
    ``num_groups=1`` is LayerNorm over ``(*spatial, C)``; ``num_groups=C`` is InstanceNorm.
    """
    layout = "(..., " + ", ".join(["S"] * spatial_rank + ["C"]) + ")"

    def check(shape):
        if shape[-1] % num_groups:
            raise ShapeError(f"expected input channels divisible by num_groups={num_groups} {layout}, got {tuple(shape)}")

    def fn(params, x):
        return group_norm(params, x, num_groups=num_groups, spatial_rank=spatial_rank, epsilon=epsilon, dtype=dtype)

    return _norm_layer("group_norm", fn, use_scale=use_scale, use_bias=use_bias, scale_init=scale_init,
                       bias_init=bias_init, param_dtype=param_dtype, min_rank=spatial_rank + 1, layout=layout,
                       check=check)


def BatchNorm(*, momentum: float = 0.99, epsilon: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
              axis_name: Optional[str] = None, scale_init=initializers.ones, bias_init=initializers.zeros,
              param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`batch_norm` (Ioffe & Szegedy, 2015) on ``(..., C)``: statistics over every axis but the last.

    params ``{"scale": (C,), "bias": (C,)}``; state ``{"mean": (C,), "var": (C,)}``, the running statistics
    (initially 0 and 1, kept in the parameter dtype).

    * ``train=True``: normalise with the batch mean and the *biased* batch variance, and return the updated
      state ``running = momentum * running + (1 - momentum) * batch``. The running variance is updated with the
      same biased batch variance (as flax does; PyTorch uses the unbiased one there, a factor n/(n-1) apart).
    * ``train=False``: normalise with the running statistics; the state comes back unchanged.

    With ``axis_name`` the batch statistics are averaged with ``lax.pmean`` over that named axis, so the layer
    works per example under ``jax.vmap(..., axis_name=...)`` and across devices under ``shard_map``/``pmap``
    (each shard must hold the same number of examples for the mean of means to be the global mean).
    """

    def init(key, spec):
        if len(spec.shape) < 1:
            raise ShapeError(f"expected input of shape (..., C), got {tuple(spec.shape)}")
        pdt = param_dtype_for(spec.dtype, param_dtype)
        c = spec.shape[-1]
        params = _affine_params(key, c, pdt, use_scale, use_bias, scale_init, bias_init)
        state = {"mean": jnp.zeros((c,), pdt), "var": jnp.ones((c,), pdt)}
        return output_spec(apply, params, state, spec), params, state

    def apply(params, state, x, *, key=None, train=False):
        _check_channels(params, state, x)
        return batch_norm(params, state, x, train=train, momentum=momentum, epsilon=epsilon, axis_name=axis_name,
                          dtype=dtype)

    return layer("batch_norm", init, apply, axes=AXES)
