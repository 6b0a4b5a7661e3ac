"""Cross-attention: queries from one sequence (a decoder's), keys and values from another (an encoder's output).

Layout as :mod:`deepcore.layers.attention`: ``x: (..., T, D)`` queries, ``memory: (..., S, E)`` the sequence
attended to, ``memory_mask: (..., S)`` bool (False = padding). Parameters::

    {"q": {"w": (D, N H), "b"}, "kv": {"w": (E, 2 K H), "b"}, "out": {"w": (N H, D_out), "b"}}

* :func:`memory_kv`: the keys and values of ``memory``, ``{"k", "v"}: (..., S, K, H)``. They do not depend on
  the decoder's position, so a decoder computes them once per source and reuses them at every step.
* :func:`cross_attention`: ``attention(q(x), k, v)`` with the key padding mask, through
  :func:`deepcore.layers.attention.attention` (``implementation="auto"`` etc.); takes ``memory`` or its
  precomputed ``kv``.
* :func:`CrossAttention`: the layer, initialised from the spec of ``x`` (the memory width is ``d_memory``);
  ``apply`` takes ``(x, memory)``, ``(x, memory, memory_mask)``, or ``x`` alone (then ``x`` attends to itself,
  with cross-attention's parameters).
"""
import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec, param_dtype_for
from deepcore.layers.attention import IMPLEMENTATIONS, attention, init_head_sizes

AXES = {"q": {"w": ("embed", "heads"), "b": ("heads",)}, "kv": {"w": ("embed", "kv"), "b": ("kv",)},
        "out": {"w": ("heads", "embed"), "b": ("embed",)}}


def init_cross_attention(key, d_model, num_heads, *, d_memory=None, head_dim=None, num_kv_heads=None,
                         out_features=None, use_bias=True, w_init=initializers.glorot_uniform(),
                         b_init=initializers.zeros, dtype=jnp.float32):
    """Parameters for :func:`cross_attention`: queries from ``d_model`` features, keys/values from ``d_memory``
    (default ``d_model``); ``head_dim`` defaults to ``d_model // num_heads``."""
    kh, head_dim = init_head_sizes("cross_attention", d_model, num_heads, num_kv_heads, head_dim)
    d_memory = d_memory or d_model
    keys = jax.random.split(key, 6)
    shapes = {"q": (d_model, num_heads * head_dim), "kv": (d_memory, 2 * kh * head_dim),
              "out": (num_heads * head_dim, out_features or d_model)}
    params = {name: {"w": w_init(k, shape, dtype)} for (name, shape), k in zip(shapes.items(), keys[:3])}
    if use_bias:
        for (name, shape), k in zip(shapes.items(), keys[3:]):
            params[name]["b"] = b_init(k, (shape[1],), dtype)
    return params


def cross_sizes(params, num_heads):
    """``(N, K, H)``: query heads, key/value heads and head size of :func:`init_cross_attention` parameters."""
    h = params["q"]["w"].shape[1] // num_heads
    return num_heads, params["kv"]["w"].shape[1] // (2 * h), h


def _project(p, x):
    y = x @ p["w"]
    return y + left_expand(p["b"], y.ndim) if "b" in p else y


def memory_kv(params, memory, *, num_heads, dtype=None):
    """Keys and values of ``memory: (..., S, E)``: ``{"k", "v"}: (..., S, K, H)``, in the compute dtype."""
    _, kh, h = cross_sizes(params, num_heads)
    if memory.ndim < 2 or memory.shape[-1] != params["kv"]["w"].shape[0]:
        raise ShapeError(f"expected memory (..., S, {params['kv']['w'].shape[0]}), got {tuple(memory.shape)}")
    cdt = compute_dtype_for(memory.dtype, dtype)
    k, v = jnp.split(_project(cast(params["kv"], cdt), memory.astype(cdt)), 2, axis=-1)
    shape = memory.shape[:-1] + (kh, h)
    return {"k": k.reshape(shape), "v": v.reshape(shape)}


def cross_attention(params, x, memory=None, *, kv=None, memory_mask=None, num_heads, implementation="auto",
                    dtype=None):
    """``x: (..., T, D)`` attending to ``memory: (..., S, E)`` (or its :func:`memory_kv` ``kv``) ->
    ``(..., T, D_out)``. ``memory_mask: (..., S)`` bool, False marks padding positions of the memory."""
    if (memory is None) == (kv is None):
        raise ValueError("cross_attention: give exactly one of memory and kv")
    n, _, h = cross_sizes(params, num_heads)
    if x.ndim < 2 or x.shape[-1] != params["q"]["w"].shape[0]:
        raise ShapeError(f"expected input (..., T, {params['q']['w'].shape[0]}), got {tuple(x.shape)}")
    cdt = compute_dtype_for(x.dtype, dtype)
    if kv is None:
        kv = memory_kv(params, memory, num_heads=num_heads, dtype=cdt)
    if kv["k"].shape[:-3] != x.shape[:-2]:
        raise ShapeError(f"expected memory with the batch shape {tuple(x.shape[:-2])} of the input, "
                         f"got keys {tuple(kv['k'].shape)}")
    p = cast({"q": params["q"], "out": params["out"]}, cdt)
    q = _project(p["q"], x.astype(cdt)).reshape(x.shape[:-1] + (n, h))
    o = attention(q, kv["k"].astype(cdt), kv["v"].astype(cdt), key_mask=memory_mask, implementation=implementation)
    return _project(p["out"], o.reshape(x.shape[:-1] + (n * h,)))


def _split(x):
    if not isinstance(x, tuple):
        return x, x, None
    if len(x) not in (2, 3):
        raise ShapeError(f"expected x, (x, memory) or (x, memory, memory_mask), got a tuple of {len(x)}")
    return (x + (None,))[:3]


def CrossAttention(num_heads: int, *, d_memory=None, head_dim=None, num_kv_heads=None, out_features=None,
                   use_bias: bool = True, implementation: str = "auto", w_init=initializers.glorot_uniform(),
                   b_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """Cross-attention layer ``((..., T, D), (..., S, E)[, (..., S) mask]) -> (..., T, out_features or D)``,
    ``E = d_memory`` (default ``D``); initialised from the spec of ``x``; ``x`` alone attends to itself."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"cross_attention: implementation must be one of {IMPLEMENTATIONS}, "
                         f"got {implementation!r}")

    def init(key, spec):
        if len(spec.shape) < 2:
            raise ShapeError(f"expected input of shape (..., T, D), got {tuple(spec.shape)}")
        params = init_cross_attention(key, spec.shape[-1], num_heads, d_memory=d_memory, head_dim=head_dim,
                                      num_kv_heads=num_kv_heads, out_features=out_features, use_bias=use_bias,
                                      w_init=w_init, b_init=b_init, dtype=param_dtype_for(spec.dtype, param_dtype))
        memory = jax.ShapeDtypeStruct(spec.shape[:-1] + (d_memory or spec.shape[-1],), spec.dtype)
        return output_spec(apply, params, {}, (spec, memory)), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, memory, mask = _split(x)
        return cross_attention(params, x, memory, memory_mask=mask, num_heads=num_heads,
                               implementation=implementation, dtype=dtype), state

    return layer("cross_attention", init, apply, axes=AXES)


__all__ = ["init_cross_attention", "cross_sizes", "memory_kv", "cross_attention", "CrossAttention"]
