"""Multi-head dot-product attention with causal and padding masks, grouped-query heads and a KV cache.

Layout (as in ``jax.nn.dot_product_attention``): queries ``(..., T, N, H)``, keys and values
``(..., S, K, H)`` with ``N`` query heads, ``K`` key/value heads (``N % K == 0``; ``K < N`` is
grouped-query attention, ``K == 1`` multi-query) and head size ``H``.

* :func:`attention`: the function, ``softmax(q k^T / sqrt(H) + mask) v``; use it directly for
  cross-attention (``S != T``).
* :func:`self_attention`: projections + attention + output projection on parameters, with an optional
  fixed-size KV cache (a dict of arrays, carried through ``lax.scan``) for decoding.
* :func:`MultiHeadAttention`: the self-attention layer.

``implementation="xla"`` calls ``jax.nn.dot_product_attention`` (fused where the backend has a kernel),
``"cudnn"`` asks it for cuDNN flash attention (GPU only; padding masks must be right-padded), and
``"reference"`` computes the formula explicitly with einsums. ``jax.nn``'s XLA path computes the softmax in
float32, so float64 inputs always take the reference path (exact float64 gradients).
"""
import math

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, output_spec, param_dtype_for
from deepcore.layers.position import rope as _rope

IMPLEMENTATIONS = ("xla", "cudnn", "reference")


def _big_negative(dtype):
    return -0.7 * float(jnp.finfo(dtype).max)   # the fill jax.nn.dot_product_attention uses


def reference_attention(q, k, v, mask=None, scale=None):
    """``softmax(q k^T * scale, masked) v`` for ``q: (B, T, N, H)``, ``k, v: (B, S, K, H)``, bool ``mask``
    broadcastable to ``(B, N, T, S)`` (True = attend). Softmax in at least float32."""
    b, t, n, h = q.shape
    kh = k.shape[2]
    scale = 1.0 / math.sqrt(h) if scale is None else scale
    qg = q.reshape(b, t, kh, n // kh, h)
    logits = jnp.einsum("btkgh,bskh->bkgts", qg, k) * jnp.asarray(scale, q.dtype)
    sdt = jnp.promote_types(q.dtype, jnp.float32)
    logits = logits.astype(sdt)
    if mask is not None:
        m = jnp.broadcast_to(mask, (b, mask.shape[1], t, k.shape[1]))
        m = m.reshape(b, kh, n // kh, t, -1) if m.shape[1] == n else m[:, :, None]
        logits = jnp.where(m, logits, _big_negative(sdt))
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(b, t, n, h)


def attention(q, k, v, *, causal=False, key_mask=None, mask=None, scale=None, implementation="xla"):
    """Scaled dot-product attention.

    q: ``(..., T, N, H)``; k, v: ``(..., S, K, H)``; returns ``(..., T, N, H)``.
    ``causal``: query ``i`` attends to keys ``0..i`` (top-left aligned, as ``jax.nn``).
    ``key_mask``: bool ``(..., S)``, False marks padding keys. ``mask``: bool broadcastable to
    ``(..., N, T, S)``. All given masks are combined (logical and). A query with no key to attend to
    gets the uniform average of the values (both implementations).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"attention: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if q.ndim < 3 or k.shape != v.shape or k.ndim != q.ndim or q.shape[-1] != k.shape[-1] \
            or q.shape[:-3] != k.shape[:-3] or q.shape[-2] % k.shape[-2]:
        raise ShapeError(f"expected q (..., T, N, H) and k, v (..., S, K, H) with N % K == 0, "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    lead, (t, n, h), s = q.shape[:-3], q.shape[-3:], k.shape[-3]
    b = math.prod(lead)
    q4, k4, v4 = q.reshape(b, t, n, h), k.reshape((b,) + k.shape[-3:]), v.reshape((b,) + v.shape[-3:])

    full = None
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        mask = mask.reshape((1,) * max(0, 3 - mask.ndim) + mask.shape)
        mask = jnp.broadcast_to(mask, lead + mask.shape[-3:]).reshape((b,) + mask.shape[-3:])
        full = mask
    if key_mask is not None:
        if key_mask.shape[-1] != s:
            raise ShapeError(f"expected key_mask (..., {s}), got {tuple(key_mask.shape)}")
        km = jnp.broadcast_to(jnp.asarray(key_mask, bool), lead + (s,)).reshape(b, 1, 1, s)
        full = km if full is None else full & km

    if implementation == "reference" or q.dtype == jnp.float64:
        if causal:
            c = jnp.tril(jnp.ones((t, s), bool))[None, None]
            full = c if full is None else full & c
        out = reference_attention(q4, k4, v4, full, scale)
    elif implementation == "cudnn" and mask is None:
        lengths = None if key_mask is None else jnp.sum(full[:, 0, 0], axis=-1, dtype=jnp.int32)
        out = jax.nn.dot_product_attention(q4, k4, v4, scale=scale, is_causal=causal,
                                           key_value_seq_lengths=lengths, implementation="cudnn")
    else:
        out = jax.nn.dot_product_attention(q4, k4, v4, mask=full, scale=scale, is_causal=causal,
                                           implementation="xla")
    return out.reshape(q.shape)


# ----------------------------------------------------------------------------- projections and cache

def _heads(params, num_heads, num_kv_heads):
    width = params["qkv"]["w"].shape[1]
    n, kh = num_heads, num_kv_heads or num_heads
    return n, kh, width // (n + 2 * kh)


def init_cache(batch_shape, max_len, num_kv_heads, head_dim, dtype=jnp.float32):
    """Empty KV cache of one attention layer: ``{"k", "v"}: (*batch_shape, max_len, K, H)``."""
    shape = tuple(batch_shape) + (max_len, num_kv_heads, head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def self_attention(params, x, *, num_heads, num_kv_heads=None, causal=False, key_mask=None, rope=False,
                   rope_base=10000.0, positions=None, cache=None, index=0, implementation="xla", dtype=None):
    """Self-attention on parameters: ``x: (..., T, D) -> ((..., T, D_out), cache)``.

    params: ``{"qkv": {"w": (D, (N + 2K) H), "b"}, "out": {"w": (N H, D_out), "b"}}`` (biases optional).
    ``positions`` (for ``rope``) default to ``index + arange(T)``. With ``cache`` (from :func:`init_cache`),
    the new keys and values are written at ``index`` (a traced int is fine) and the queries attend to
    every cached position ``< index + T`` (and ``<=`` their own, if ``causal``); the updated cache is
    returned. ``key_mask: (..., S)`` marks padding keys, ``S = T`` or the cache length.
    """
    n, kh, h = _heads(params, num_heads, num_kv_heads)
    if x.ndim < 2 or x.shape[-1] != params["qkv"]["w"].shape[0]:
        raise ShapeError(f"expected input (..., T, {params['qkv']['w'].shape[0]}), got {tuple(x.shape)}")
    cdt = compute_dtype_for(x.dtype, dtype)
    p = cast(params, cdt)
    x = x.astype(cdt)
    t = x.shape[-2]
    qkv = x @ p["qkv"]["w"]
    if "b" in p["qkv"]:
        qkv = qkv + p["qkv"]["b"]
    q, k, v = jnp.split(qkv, [n * h, (n + kh) * h], axis=-1)
    q, k, v = (a.reshape(x.shape[:-1] + (m, h)) for a, m in ((q, n), (k, kh), (v, kh)))
    if rope:
        pos = index + jnp.arange(t) if positions is None else positions
        q, k = _rope(q, pos, rope_base), _rope(k, pos, rope_base)

    if cache is None:
        o = attention(q, k, v, causal=causal, key_mask=key_mask, implementation=implementation)
    else:
        axis = x.ndim - 2
        ck = jax.lax.dynamic_update_slice_in_dim(cache["k"], k.astype(cache["k"].dtype), index, axis)
        cv = jax.lax.dynamic_update_slice_in_dim(cache["v"], v.astype(cache["v"].dtype), index, axis)
        cache = {"k": ck, "v": cv}
        kpos, qpos = jnp.arange(ck.shape[axis]), index + jnp.arange(t)
        m = (kpos[None, :] <= qpos[:, None]) if causal else jnp.broadcast_to(kpos < index + t, (t, kpos.size))
        impl = "xla" if implementation == "cudnn" else implementation
        o = attention(q, ck.astype(cdt), cv.astype(cdt), mask=m[None], key_mask=key_mask, implementation=impl)

    y = o.reshape(x.shape[:-1] + (n * h,)) @ p["out"]["w"]
    if "b" in p["out"]:
        y = y + p["out"]["b"]
    return y, cache


def init_attention(key, d_model, num_heads, *, head_dim=None, num_kv_heads=None, out_features=None,
                   use_bias=True, w_init=initializers.glorot_uniform, b_init=initializers.zeros,
                   dtype=jnp.float32):
    """Parameters for :func:`self_attention` on inputs with ``d_model`` features."""
    kh = num_kv_heads or num_heads
    if num_heads % kh:
        raise ValueError(f"attention: num_heads ({num_heads}) must be a multiple of num_kv_heads ({kh})")
    if head_dim is None:
        if d_model % num_heads:
            raise ShapeError(f"expected features divisible by {num_heads} heads (..., T, D), got D = {d_model}")
        head_dim = d_model // num_heads
    k1, k2, k3, k4 = jax.random.split(key, 4)
    width = (num_heads + 2 * kh) * head_dim
    params = {"qkv": {"w": w_init(k1, (d_model, width), dtype)},
              "out": {"w": w_init(k2, (num_heads * head_dim, out_features or d_model), dtype)}}
    if use_bias:
        params["qkv"]["b"] = b_init(k3, (width,), dtype)
        params["out"]["b"] = b_init(k4, (out_features or d_model,), dtype)
    return params


def MultiHeadAttention(num_heads: int, *, head_dim=None, num_kv_heads=None, out_features=None,
                       use_bias: bool = True, causal: bool = False, rope: bool = False, rope_base: float = 10000.0,
                       implementation: str = "xla", w_init=initializers.glorot_uniform, b_init=initializers.zeros,
                       param_dtype=None, dtype=None) -> Layer:
    """Self-attention layer ``(..., T, D) -> (..., T, out_features or D)``.

    Call ``apply`` with ``x`` or with ``(x, key_mask)``, ``key_mask: (..., T)`` bool (False = padding).
    ``head_dim`` defaults to ``D // num_heads``; ``num_kv_heads < num_heads`` gives grouped-query attention.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"attention: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    opts = dict(num_heads=num_heads, num_kv_heads=num_kv_heads, causal=causal, rope=rope, rope_base=rope_base,
                implementation=implementation, dtype=dtype)

    def init(key, spec):
        if len(spec.shape) < 2:
            raise ShapeError(f"expected input of shape (..., T, D), got {tuple(spec.shape)}")
        params = init_attention(key, spec.shape[-1], num_heads, head_dim=head_dim, num_kv_heads=num_kv_heads,
                                out_features=out_features, use_bias=use_bias, w_init=w_init, b_init=b_init,
                                dtype=param_dtype_for(spec.dtype, param_dtype))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, key_mask = x if isinstance(x, tuple) else (x, None)
        y, _ = self_attention(params, x, key_mask=key_mask, **opts)
        return y, state

    return layer("attention", init, apply)


__all__ = ["attention", "reference_attention", "self_attention", "init_attention", "init_cache",
           "MultiHeadAttention", "IMPLEMENTATIONS"]
