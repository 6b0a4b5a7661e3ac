"""Dense (fully connected): the function :func:`dense` and its layer :func:`Dense`, ``(..., d_in) -> (..., features)``."""
import jax.numpy as jnp
import jax

from deepcore import initializers
from deepcore.core import (Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec,
                           param_dtype_for)


AXES = {"w": ("dense_in", "dense_out"), "b": ("dense_out",)}   # logical axis names (deepcore.layers.logical)


def dense(params, x, *, dtype=None):
    """``x @ w + b``: ``x: (..., d_in)``, params ``{"w": (d_in, F), "b": (F,)}`` (``b`` optional) -> ``(..., F)``.

    Computed in ``dtype`` (default: the input's floating dtype), parameters cast to it.
    """
    cdt = compute_dtype_for(x.dtype, dtype)
    p = cast(params, cdt)
    y = jnp.matmul(x.astype(cdt), p["w"])
    return y + left_expand(p["b"], y.ndim) if "b" in p else y


def Dense(features: int, *, use_bias: bool = True, w_init=initializers.glorot_uniform(),
          b_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`dense`, with ``w: (d_in, features)``, ``b: (features,)``.

    ``param_dtype`` defaults to the input's float32/float64; ``dtype`` (compute) to the input's dtype.
    """

    def init(key, spec):
        if len(spec.shape) < 1:
            raise ShapeError(f"expected input of shape (..., d_in), got {tuple(spec.shape)}")
        pdt = param_dtype_for(spec.dtype, param_dtype)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (spec.shape[-1], features), pdt)}
        if use_bias:
            params["b"] = b_init(kb, (features,), pdt)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        d_in = params["w"].shape[0]
        if x.shape[-1:] != (d_in,):
            raise ShapeError(f"expected input (..., {d_in}), got {tuple(x.shape)}")
        return dense(params, x, dtype=dtype), state

    return layer("dense", init, apply, axes=AXES)
