"""Multi-head dot-product attention with causal and padding masks, grouped-query heads and a KV cache.

Layout (as in ``jax.nn.dot_product_attention``): queries ``(..., T, N, H)``, keys and values
``(..., S, K, H)`` with ``N`` query heads, ``K`` key/value heads (``N % K == 0``; ``K < N`` is
grouped-query attention, ``K == 1`` multi-query) and head size ``H``.

* :func:`attention`: the function, ``softmax(q k^T / sqrt(H) + mask) v``; use it directly for
  cross-attention (``S != T``).
* :func:`self_attention`: projections + attention + output projection on parameters, with an optional
  fixed-size KV cache (a dict of arrays, carried through ``lax.scan``) for decoding.
* :func:`MultiHeadAttention`: the self-attention layer.

``implementation="auto"`` (the default) takes cuDNN flash attention where it is valid and the XLA path
elsewhere; :func:`choose_implementation` returns that choice and the reason for it (on a CPU: always XLA).
``"xla"`` calls ``jax.nn.dot_product_attention``'s XLA path, ``"cudnn"`` asks it for cuDNN flash attention
(GPU only; a ``key_mask`` must be right-padding), and ``"reference"`` computes the formula explicitly with
einsums. ``jax.nn``'s XLA path computes the softmax in float32, so float64 inputs always take the reference
path (exact float64 gradients).

Masks: ``causal``; padding as ``key_mask`` (bool, any pattern) or ``key_lengths`` (keys ``< length`` valid:
right padding, which cuDNN takes); packed sequences as ``segment_ids`` (a query attends only to keys of its
own segment); a general ``mask``.
"""
import math

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import (Layer, ShapeError, accum_dtype, cast, compute_dtype_for, implicit_promotion, layer,
                           left_expand, output_spec, param_dtype_for)
from deepcore.layers.logical import constrain
from deepcore.layers.position import rope as _rope

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "reference")
FUSED_DTYPES = ("bfloat16", "float16")
MAX_FUSED_HEAD_DIM = 128   # cuDNN flash attention: head size <= 128 (256 from Hopper on) and a multiple of 8


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
    sdt = accum_dtype(q.dtype)
    logits = logits.astype(sdt)
    if mask is not None:
        m = jnp.broadcast_to(mask, (b, mask.shape[1], t, k.shape[1]))
        m = m.reshape(b, kh, n // kh, t, -1) if m.shape[1] == n else m[:, :, None]
        logits = jnp.where(m, logits, _big_negative(sdt))
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(b, t, n, h)


def choose_implementation(q, k, *, causal=False, mask=None, key_mask=None, segment_ids=None,
                          implementation="auto", backend=None):
    """``(implementation, reason)`` that :func:`attention` uses for these arguments: ``"auto"`` becomes
    ``"cudnn"`` on a GPU for bfloat16/float16, head size a multiple of 8 up to 128, causal only with as many
    queries as keys, no general ``mask``, no ``key_mask`` (give ``key_lengths``) and no ``segment_ids``;
    ``"xla"`` otherwise. ``backend`` defaults to ``jax.default_backend()``."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"attention: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if jnp.dtype(q.dtype) == jnp.float64 and implementation != "reference":
        return "reference", "float64 inputs: the explicit formula (jax.nn's softmax is float32)"
    if implementation != "auto":
        return implementation, "asked for"
    backend = backend or jax.default_backend()
    t, h, s = q.shape[-3], q.shape[-1], k.shape[-3]
    dt = jnp.dtype(q.dtype).name
    why = (f"backend is {backend}, not gpu" if backend not in ("gpu", "cuda") else
           f"dtype {dt} is not one of {FUSED_DTYPES}" if dt not in FUSED_DTYPES
           else f"head size {h} is not a multiple of 8 up to {MAX_FUSED_HEAD_DIM}" if h % 8 or h > MAX_FUSED_HEAD_DIM
           else f"causal with {t} queries and {s} keys (cuDNN aligns causal masks top-left)" if causal and t != s
           else "a general mask" if mask is not None
           else "a key_mask of unknown pattern (give key_lengths for right padding)" if key_mask is not None
           else "segment_ids (packed sequences)" if segment_ids is not None else None)
    return ("xla", why) if why else ("cudnn", "cuDNN flash attention: GPU, half precision, supported shape and mask")


def _segment_mask(segment_ids, b, t, s):
    """``segment_ids``: ``(..., T)`` (queries and keys alike, ``S == T``) or a pair ``((..., T), (..., S))``
    -> bool ``(B, 1, T, S)``, True where query and key share a segment."""
    qs, ks = segment_ids if isinstance(segment_ids, tuple) else (segment_ids, segment_ids)
    if qs.shape[-1] != t or ks.shape[-1] != s:
        raise ShapeError(f"expected segment_ids (..., {t}) for queries and (..., {s}) for keys, "
                         f"got {tuple(qs.shape)} and {tuple(ks.shape)}")
    qs, ks = jnp.asarray(qs).reshape(-1, t), jnp.asarray(ks).reshape(-1, s)
    return jnp.broadcast_to((qs[:, :, None] == ks[:, None, :])[:, None], (b, 1, t, s))


def attention(q, k, v, *, causal=False, key_mask=None, key_lengths=None, segment_ids=None, mask=None, scale=None,
              implementation="auto"):
    """Scaled dot-product attention.

    q: ``(..., T, N, H)``; k, v: ``(..., S, K, H)``; returns ``(..., T, N, H)``.
    ``causal``: query ``i`` attends to keys ``0..i`` (top-left aligned, as ``jax.nn``).
    ``key_mask``: bool ``(..., S)``, False marks padding keys. ``key_lengths``: int ``(...)``, keys
    ``0..length-1`` valid. ``segment_ids``: int ``(..., T)`` (self-attention) or a pair for queries and keys.
    ``mask``: bool broadcastable to ``(..., N, T, S)``. All given masks are combined (logical and). A query
    with no key to attend to gets the uniform average of the values (both implementations).
    """
    if q.ndim < 3 or k.shape != v.shape or k.ndim != q.ndim or q.shape[-1] != k.shape[-1] \
            or q.shape[:-3] != k.shape[:-3] or q.shape[-2] % k.shape[-2]:
        raise ShapeError(f"expected q (..., T, N, H) and k, v (..., S, K, H) with N % K == 0, "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    implementation, _ = choose_implementation(q, k, causal=causal, mask=mask, key_mask=key_mask,
                                              segment_ids=segment_ids, implementation=implementation)
    lead, (t, n, h), s = q.shape[:-3], q.shape[-3:], k.shape[-3]
    b = math.prod(lead)
    q4, k4, v4 = q.reshape(b, t, n, h), k.reshape((b,) + k.shape[-3:]), v.reshape((b,) + v.shape[-3:])
    lengths = None if key_lengths is None else jnp.broadcast_to(jnp.asarray(key_lengths, jnp.int32), lead).reshape(b)

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
    if segment_ids is not None:
        sm = _segment_mask(segment_ids, b, t, s)
        full = sm if full is None else full & sm

    if implementation == "cudnn" and mask is None and segment_ids is None:
        if key_mask is not None:
            n_valid = jnp.sum(full[:, 0, 0], axis=-1, dtype=jnp.int32)
            lengths = n_valid if lengths is None else jnp.minimum(lengths, n_valid)
        with implicit_promotion():   # jax.nn mixes bfloat16 logits with float32 internally
            out = jax.nn.dot_product_attention(q4, k4, v4, scale=scale, is_causal=causal,
                                               key_value_seq_lengths=lengths, implementation="cudnn")
        return out.reshape(q.shape)
    if lengths is not None:
        lm = (jnp.arange(s)[None, :] < lengths[:, None])[:, None, None, :]
        full = lm if full is None else full & lm
    if implementation == "reference":
        if causal:
            c = jnp.tril(jnp.ones((t, s), bool))[None, None]
            full = c if full is None else full & c
        out = reference_attention(q4, k4, v4, full, scale)
    else:
        with implicit_promotion():   # jax.nn mixes bfloat16 logits with float32 internally
            out = jax.nn.dot_product_attention(q4, k4, v4, mask=full, scale=scale, is_causal=causal,
                                               implementation="xla")
    return out.reshape(q.shape)


# ----------------------------------------------------------------------------- projections and cache

def head_sizes(params, num_heads, num_kv_heads=None):
    """``(N, K, H)``: query heads, key/value heads and the head size of :func:`self_attention` parameters
    (``H`` read off the ``qkv`` width ``(N + 2K) H``)."""
    width = params["qkv"]["w"].shape[1]
    n, kh = num_heads, num_kv_heads or num_heads
    return n, kh, width // (n + 2 * kh)


def init_cache(batch_shape, max_len, num_kv_heads, head_dim, dtype=jnp.float32):
    """Empty KV cache of one attention layer: ``{"k", "v"}: (*batch_shape, max_len, K, H)``."""
    shape = tuple(batch_shape) + (max_len, num_kv_heads, head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def self_attention(params, x, *, num_heads, num_kv_heads=None, causal=False, key_mask=None, segment_ids=None,
                   rope=False, rope_base=10000.0, positions=None, cache=None, index=0, implementation="auto",
                   dtype=None):
    """Self-attention on parameters: ``x: (..., T, D) -> ((..., T, D_out), cache)``.

    params: ``{"qkv": {"w": (D, (N + 2K) H), "b"}, "out": {"w": (N H, D_out), "b"}}`` (biases optional).
    ``positions`` (for ``rope``) default to ``index + arange(T)``. With ``cache`` (from :func:`init_cache`),
    the new keys and values are written at ``index`` (a traced int is fine) and the queries attend to
    every cached position ``< index + T`` (and ``<=`` their own, if ``causal``); the updated cache is
    returned. ``key_mask: (..., S)`` marks padding keys, ``S = T`` or the cache length; ``segment_ids:
    (..., T)`` keeps packed sequences apart (no cache). With a cache, a prefill at a Python ``index == 0``
    attends to the new keys alone and a one-token step takes ``key_lengths = index + 1``: both fusable.
    """
    n, kh, h = head_sizes(params, num_heads, num_kv_heads)
    if x.ndim < 2 or x.shape[-1] != params["qkv"]["w"].shape[0]:
        raise ShapeError(f"expected input (..., T, {params['qkv']['w'].shape[0]}), got {tuple(x.shape)}")
    cdt = compute_dtype_for(x.dtype, dtype)
    p = cast(params, cdt)
    x = x.astype(cdt)
    t = x.shape[-2]
    qkv = x @ p["qkv"]["w"]
    if "b" in p["qkv"]:
        qkv = qkv + left_expand(p["qkv"]["b"], qkv.ndim)
    q, k, v = jnp.split(qkv, [n * h, (n + kh) * h], axis=-1)
    q, k, v = (constrain(a.reshape(x.shape[:-1] + (m, h)), ("batch", "length", "heads", "head_dim"))
               for a, m in ((q, n), (k, kh), (v, kh)))   # tensor parallel: by heads (a no-op without rules)
    if rope:
        pos = index + jnp.arange(t) if positions is None else positions
        q, k = _rope(q, pos, rope_base), _rope(k, pos, rope_base)

    attend = dict(key_mask=key_mask, segment_ids=segment_ids, implementation=implementation)
    if cache is None:
        o = attention(q, k, v, causal=causal, **attend)
    else:
        axis = x.ndim - 2
        ck = jax.lax.dynamic_update_slice_in_dim(cache["k"], k.astype(cache["k"].dtype), index, axis)
        cv = jax.lax.dynamic_update_slice_in_dim(cache["v"], v.astype(cache["v"].dtype), index, axis)
        cache = {"k": ck, "v": cv}
        size = ck.shape[axis]
        if isinstance(index, int) and index == 0:   # prefill: the cache holds nothing older than these keys
            km = key_mask if key_mask is None or key_mask.shape[-1] == t else key_mask[..., :t]
            o = attention(q, k, v, causal=causal, **dict(attend, key_mask=km))
        elif t == 1:   # one new token: every cached key up to it, causal or not
            o = attention(q, ck.astype(cdt), cv.astype(cdt), key_lengths=index + 1, **attend)
        else:
            kpos, qpos = jnp.arange(size), index + jnp.arange(t)
            m = (kpos[None, :] <= qpos[:, None]) if causal else jnp.broadcast_to(kpos < index + t, (t, size))
            o = attention(q, ck.astype(cdt), cv.astype(cdt), mask=m[None], **attend)

    y = o.reshape(x.shape[:-1] + (n * h,)) @ p["out"]["w"]
    if "b" in p["out"]:
        y = y + left_expand(p["out"]["b"], y.ndim)
    return y, cache


# logical axis names (deepcore.layers.logical): the fused [q | k | v] columns, the output rows by heads
AXES = {"qkv": {"w": ("embed", "qkv"), "b": ("qkv",)}, "out": {"w": ("heads", "embed"), "b": ("embed",)}}


def init_head_sizes(name: str, d_model: int, num_heads: int, num_kv_heads=None, head_dim=None):
    """``(num_kv_heads, head_dim)`` for initialising ``name``: ``num_kv_heads`` (default ``num_heads``) must divide
    ``num_heads``; ``head_dim`` defaults to ``d_model // num_heads`` (then ``d_model`` must be divisible)."""
    kh = num_kv_heads or num_heads
    if num_heads % kh:
        raise ValueError(f"{name}: num_heads ({num_heads}) must be a multiple of num_kv_heads ({kh})")
    if head_dim is None:
        if d_model % num_heads:
            raise ShapeError(f"expected features divisible by {num_heads} heads (..., T, D), got D = {d_model}")
        head_dim = d_model // num_heads
    return kh, head_dim

def init_attention(key, d_model, num_heads, *, head_dim=None, num_kv_heads=None, out_features=None,
                   use_bias=True, w_init=initializers.glorot_uniform(), b_init=initializers.zeros,
                   dtype=jnp.float32):
    """Parameters for :func:`self_attention` on inputs with ``d_model`` features."""
    kh, head_dim = init_head_sizes("attention", d_model, num_heads, num_kv_heads, head_dim)
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
                       implementation: str = "auto", w_init=initializers.glorot_uniform(), b_init=initializers.zeros,
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

    return layer("attention", init, apply, axes=AXES)


__all__ = ["attention", "choose_implementation", "reference_attention", "self_attention", "init_attention",
           "init_cache", "head_sizes", "MultiHeadAttention", "IMPLEMENTATIONS"]
