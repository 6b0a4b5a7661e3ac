"""Normalisation layers over channels-last inputs: LayerNorm, RMSNorm, GroupNorm and BatchNorm.

Statistics are computed in at least float32 (a bfloat16 input is normalised with float32 mean and
variance) and the output is returned in the compute dtype.
"""
from typing import Optional

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, output_spec, param_dtype_for


def _stat_dtype(cdt):
    return jnp.promote_types(cdt, jnp.float32)


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


def _affine(y, params, cdt):
    p = cast(params, cdt)
    y = y.astype(cdt)
    if "scale" in p:
        y = y * p["scale"]
    if "bias" in p:
        y = y + p["bias"]
    return y


def _norm_layer(name, normalise, *, use_scale, use_bias, scale_init, bias_init, param_dtype, dtype,
                min_rank=1, layout="(..., C)", check=None) -> Layer:
    """A layer ``affine(normalise(x))`` with per-channel scale/bias on the last axis."""

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
        cdt = compute_dtype_for(x.dtype, dtype)
        y = normalise(x.astype(_stat_dtype(cdt)))
        return _affine(y, params, cdt), state

    return layer(name, init, apply)


def LayerNorm(*, epsilon: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
              scale_init=initializers.ones, bias_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """Normalise over the last axis: ``(..., C) -> (..., C)``, then ``* scale + bias`` (each ``(C,)``).

    ``epsilon`` defaults to 1e-5 (PyTorch's default; flax uses 1e-6).
    """

    def normalise(x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + epsilon)

    return _norm_layer("layer_norm", normalise, use_scale=use_scale, use_bias=use_bias, scale_init=scale_init,
                       bias_init=bias_init, param_dtype=param_dtype, dtype=dtype)


def RMSNorm(*, epsilon: float = 1e-6, use_scale: bool = True, scale_init=initializers.ones,
            param_dtype=None, dtype=None) -> Layer:
    """Root-mean-square norm over the last axis (Zhang & Sennrich, 2019): ``x / rms(x) * scale``, ``(..., C)``."""

    def normalise(x):
        return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)

    return _norm_layer("rms_norm", normalise, use_scale=use_scale, use_bias=False, scale_init=scale_init,
                       bias_init=None, param_dtype=param_dtype, dtype=dtype)


def GroupNorm(num_groups: int = 32, *, spatial_rank: int = 2, epsilon: float = 1e-5, use_scale: bool = True,
              use_bias: bool = True, scale_init=initializers.ones, bias_init=initializers.zeros,
              param_dtype=None, dtype=None) -> Layer:
    """Group norm (Wu & He, 2018) on ``(..., *spatial, C)``, ``len(spatial) == spatial_rank``.

    The ``C`` channels are split into ``num_groups`` groups; each example's group is normalised over its
    spatial positions and channels. Dims before the ``spatial_rank`` spatial dims are batch dims (any number,
    including none). ``num_groups=1`` is LayerNorm over ``(*spatial, C)``; ``num_groups=C`` is InstanceNorm.
    """
    layout = "(..., " + ", ".join(["S"] * spatial_rank + ["C"]) + ")"

    def check(shape):
        if shape[-1] % num_groups:
            raise ShapeError(f"expected input channels divisible by num_groups={num_groups} {layout}, got {tuple(shape)}")

    def normalise(x):
        c = x.shape[-1]
        g = x.reshape(x.shape[:-1] + (num_groups, c // num_groups))
        axes = tuple(range(x.ndim - 1 - spatial_rank, x.ndim - 1)) + (x.ndim,)   # spatial dims and the group's channels
        mean = jnp.mean(g, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=axes, keepdims=True)
        return ((g - mean) * jax.lax.rsqrt(var + epsilon)).reshape(x.shape)

    return _norm_layer("group_norm", normalise, use_scale=use_scale, use_bias=use_bias, scale_init=scale_init,
                       bias_init=bias_init, param_dtype=param_dtype, dtype=dtype, min_rank=spatial_rank + 1,
                       layout=layout, check=check)


def BatchNorm(*, momentum: float = 0.99, epsilon: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
              axis_name: Optional[str] = None, scale_init=initializers.ones, bias_init=initializers.zeros,
              param_dtype=None, dtype=None) -> Layer:
    """Batch norm (Ioffe & Szegedy, 2015) on ``(..., C)``: statistics over every axis but the last.

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
        cdt = compute_dtype_for(x.dtype, dtype)
        xs = x.astype(_stat_dtype(cdt))
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(xs, axis=axes)
            if axis_name is not None:
                mean = jax.lax.pmean(mean, axis_name)
            var = jnp.mean(jnp.square(xs - mean), axis=axes)
            if axis_name is not None:
                var = jax.lax.pmean(var, axis_name)
            new_state = {
                "mean": (momentum * state["mean"] + (1 - momentum) * mean).astype(state["mean"].dtype),
                "var": (momentum * state["var"] + (1 - momentum) * var).astype(state["var"].dtype),
            }
        else:
            mean, var = state["mean"].astype(xs.dtype), state["var"].astype(xs.dtype)
            new_state = state
        y = (xs - mean) * jax.lax.rsqrt(var + epsilon)
        return _affine(y, params, cdt), new_state

    return layer("batch_norm", init, apply)
