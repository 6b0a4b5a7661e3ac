"""Pre-LayerNorm transformer blocks and stacks of them (scanned or unrolled).

A block maps ``(..., T, D) -> (..., T, D)``, written in :func:`block_apply` as::

    x = x + dropout(attn(layer_norm(x)))
    x = x + dropout(mlp(layer_norm(x)))          # mlp = proj(gelu(fc(.))), fc: D -> mlp_ratio * D

Block parameters: ``{"ln_attn", "attn": {"qkv", "out"}, "ln_mlp", "mlp": {"fc", "proj"}}``. A stack keeps its
blocks in ``params["blocks"]``, scanned or unrolled (:mod:`deepcore.models.stack_layout`).

A plain ``lax.scan`` saves, for the backward pass, every intermediate of the body in stacked ``(L, ...)``
buffers (the GELU's and softmax's elementwise pieces too); the scanned stack therefore runs its body under
the remat policy ``SCAN_POLICY = "dots"`` (keep the matmul outputs, recompute the elementwise work), which
made the scanned W4 step faster than the unrolled one instead of 1.2x slower. ``remat`` picks another policy.
"""
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name as tag

from deepcore import initializers
from deepcore.core import Layer, ShapeError, compute_dtype_for, layer, output_spec, param_dtype_for
from deepcore.layers.attention import (AXES as ATTENTION_AXES, IMPLEMENTATIONS, head_sizes, init_attention,
                                      init_cache, self_attention)
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout
from deepcore.layers.logical import constrain
from deepcore.layers.norm import AXES as NORM_AXES, init_norm, layer_norm
from deepcore.layers.remat import checkpointed, remat_policy
from deepcore.models.stack_layout import depth, is_scanned, stack_layers

gpt_init = initializers.normal(0.02)   # GPT-2's N(0, 0.02) weights


@dataclass(frozen=True)
class BlockConfig:
    """Options of a pre-LN block. ``head_dim`` defaults to ``D // num_heads``; ``num_kv_heads`` to
    ``num_heads`` (fewer: grouped-query). ``approximate_gelu``: tanh GELU (GPT-2) or exact. ``dropout`` is
    applied to both residual branches in train mode. ``dtype`` is the compute dtype (None: the input's)."""

    num_heads: int
    num_kv_heads: Optional[int] = None
    head_dim: Optional[int] = None
    mlp_ratio: int = 4
    approximate_gelu: bool = True
    dropout: float = 0.0
    causal: bool = True
    use_bias: bool = True
    rope: bool = False
    rope_base: float = 10000.0
    implementation: str = "auto"
    epsilon: float = 1e-5
    w_init: Callable = gpt_init
    b_init: Callable = initializers.zeros
    dtype: Any = None

    def __post_init__(self):
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {self.implementation!r}")


def split_keys(key, n: int):
    """``jax.random.split(key, n)``, or ``n`` Nones without a key (eval mode)."""
    return [None] * n if key is None else jax.random.split(key, n)


# ----------------------------------------------------------------------------- one block

def block_init(cfg: BlockConfig, key, d_model: int, dtype=jnp.float32) -> dict:
    """Parameters of one block on ``d_model`` features, in ``dtype``."""
    ka, kf, kp, kb1, kb2 = jax.random.split(key, 5)
    hidden = cfg.mlp_ratio * d_model
    mlp = {"fc": {"w": cfg.w_init(kf, (d_model, hidden), dtype)}, "proj": {"w": cfg.w_init(kp, (hidden, d_model), dtype)}}
    if cfg.use_bias:
        mlp["fc"]["b"] = cfg.b_init(kb1, (hidden,), dtype)
        mlp["proj"]["b"] = cfg.b_init(kb2, (d_model,), dtype)
    attn = init_attention(ka, d_model, cfg.num_heads, head_dim=cfg.head_dim, num_kv_heads=cfg.num_kv_heads,
                          use_bias=cfg.use_bias, w_init=cfg.w_init, b_init=cfg.b_init, dtype=dtype)
    return {"ln_attn": init_norm(d_model, dtype), "attn": attn, "ln_mlp": init_norm(d_model, dtype), "mlp": mlp}


def block_axes() -> dict:
    """Logical axis names of :func:`block_init`'s parameters (Megatron-style: ``fc`` splits its columns
    ``"mlp"``, ``proj`` its rows; attention splits ``qkv`` columns and ``out`` rows by heads)."""
    mlp_axes = {"fc": {"w": ("embed", "mlp"), "b": ("mlp",)}, "proj": {"w": ("mlp", "embed"), "b": ("embed",)}}
    return {"ln_attn": NORM_AXES, "attn": ATTENTION_AXES, "ln_mlp": NORM_AXES, "mlp": mlp_axes}


def stack_axes(blocks) -> Any:
    """Logical axis names of a stack's ``blocks``: scanned leaves get a leading ``"layers"`` axis."""
    one = block_axes()
    if is_scanned(blocks):
        return jax.tree.map(lambda names: ("layers",) + names, one, is_leaf=lambda v: isinstance(v, tuple))
    return [one] * len(blocks)


ACTIVATIONS = ("batch", "length", "embed")   # logical names of the residual stream (..., T, D)

NAMES = ("attn_in", "attn_out", "mlp_in", "mlp_hidden", "mlp_out")   # checkpoint_name tags, for remat "names:"


def mlp(cfg: BlockConfig, params, x):
    """The block's feed-forward net ``proj(gelu(fc(x)))``: ``(..., D) -> (..., D)``."""
    hidden = constrain(dense(params["fc"], x), ("batch", "length", "mlp"))
    return dense(params["proj"], jax.nn.gelu(tag(hidden, "mlp_hidden"), approximate=cfg.approximate_gelu))


def block_apply(cfg: BlockConfig, params, x, *, key=None, train=False, key_mask=None, segment_ids=None, cache=None,
                index=0):
    """One block: ``x: (..., T, D) -> ((..., T, D), cache)``; masks, ``cache``/``index`` as in
    ``self_attention``. Intermediate values are tagged with the :data:`NAMES` (for remat policies)."""
    d = params["ln_attn"]["scale"].shape[0]
    if x.ndim < 2 or x.shape[-1] != d:
        raise ShapeError(f"expected input of shape (..., T, {d}), got {tuple(x.shape)}")
    x = x.astype(compute_dtype_for(x.dtype, cfg.dtype))
    ln = partial(layer_norm, epsilon=cfg.epsilon)
    drop = partial(dropout, rate=cfg.dropout, train=train)
    attn = partial(self_attention, num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads, causal=cfg.causal,
                   key_mask=key_mask, segment_ids=segment_ids, rope=cfg.rope, rope_base=cfg.rope_base,
                   index=index, implementation=cfg.implementation)
    k_attn, k_mlp = split_keys(key, 2)

    h, cache = attn(params["attn"], tag(ln(params["ln_attn"], x), "attn_in"), cache=cache)
    x = constrain(x + drop(tag(h, "attn_out"), key=k_attn), ACTIVATIONS)
    x = x + drop(tag(mlp(cfg, params["mlp"], tag(ln(params["ln_mlp"], x), "mlp_in")), "mlp_out"), key=k_mlp)
    return constrain(x, ACTIVATIONS), cache


def split_input(x):
    """A layer input ``x`` or ``(x, key_mask)`` -> ``(x, key_mask or None)``."""
    return x if isinstance(x, tuple) else (x, None)


def TransformerBlock(num_heads: int, *, param_dtype=None, **options) -> Layer:
    """Pre-LN block layer ``(..., T, D) -> (..., T, D)``; ``options`` are :class:`BlockConfig` fields.

    Call ``apply`` with ``x`` or ``(x, key_mask)`` (``key_mask: (..., T)`` bool, False = padding).
    """
    cfg = BlockConfig(num_heads=num_heads, **options)

    def init(key, spec):
        if len(spec.shape) < 2:
            raise ShapeError(f"expected input of shape (..., T, D), got {tuple(spec.shape)}")
        params = block_init(cfg, key, spec.shape[-1], param_dtype_for(spec.dtype, param_dtype))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, key_mask = split_input(x)
        return block_apply(cfg, params, x, key=key, train=train, key_mask=key_mask)[0], state

    return layer("transformer_block", init, apply, axes=block_axes())


# ----------------------------------------------------------------------------- stacks

def stack_init(cfg: BlockConfig, key, d_model: int, num_layers: int, *, scan=True, dtype=jnp.float32):
    """Parameters of ``num_layers`` blocks: stacked (``scan``) or a list; the same values either way."""
    blocks = [block_init(cfg, k, d_model, dtype) for k in jax.random.split(key, num_layers)]
    return stack_layers(blocks) if scan else blocks


def stack_cache(cfg: BlockConfig, blocks, batch_shape, max_len, dtype=None):
    """An empty KV cache for a stack, in the layout of ``blocks`` (``(L, *batch, S, K, H)`` or a list), in
    ``dtype`` (default: the blocks' compute dtype, ``cfg.dtype`` or the parameters')."""
    first = jax.tree.map(lambda a: a[0], blocks) if is_scanned(blocks) else blocks[0]
    _, kv_heads, head_dim = head_sizes(first["attn"], cfg.num_heads, cfg.num_kv_heads)
    dtype = compute_dtype_for(first["attn"]["qkv"]["w"].dtype, cfg.dtype) if dtype is None else dtype
    one = init_cache(batch_shape, max_len, kv_heads, head_dim, dtype)
    n = depth(blocks)
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), one) if is_scanned(blocks) else [one] * n


SCAN_POLICY = "dots"   # what a scanned stack keeps per layer without remat (see stack_apply)


def stack_apply(cfg: BlockConfig, blocks, x, *, key=None, train=False, key_mask=None, segment_ids=None, cache=None,
                index=0, remat=None):
    """Run the blocks over ``x: (..., T, D)``; returns ``(y, cache)``.

    ``blocks`` stacked: ``lax.scan`` over the layer axis; a list: a Python loop. Layer ``i`` draws dropout
    from ``jax.random.split(key, L)[i]`` in both layouts, so they agree in train mode too.
    ``remat``: a policy of :mod:`deepcore.layers.remat` applied to each block (``True``: ``"nothing"``,
    recompute everything). Without one, the scanned body still runs under :data:`SCAN_POLICY`: ``lax.scan``
    saves for the backward pass every intermediate the body's derivative reads, each in an ``(L, ...)``
    buffer (the GELU's and softmax's elementwise pieces too: six ``(L, B, T, 4D)`` buffers on W4), where the
    unrolled program lets XLA fuse that elementwise work into the backward kernels; keeping only the matmul
    outputs and recomputing the rest inside the backward loop does the same for the scan.
    """
    scanned, n = is_scanned(blocks), depth(blocks)
    keys = None if key is None else jax.random.split(key, n)
    policy = "nothing" if remat is True else (remat or None)
    if scanned and policy is None and cache is None:
        policy = SCAN_POLICY

    def one(p, x, k, c, key_mask, segment_ids):
        return block_apply(cfg, p, x, key=k, train=train, key_mask=key_mask, segment_ids=segment_ids, cache=c,
                           index=index)

    one = checkpointed(one, policy)
    if scanned:
        def body(h, xs):
            p, k, c = xs
            return one(p, h, k, c, key_mask, segment_ids)

        return jax.lax.scan(body, x, (blocks, keys, cache))
    caches = []
    for i, p in enumerate(blocks):
        x, c = one(p, x, None if keys is None else keys[i], None if cache is None else cache[i], key_mask,
                   segment_ids)
        caches.append(c)
    return x, (None if cache is None else caches)


def TransformerStack(num_layers: int, num_heads: int, *, scan: bool = True, remat=None, param_dtype=None,
                     **options) -> Layer:
    """``num_layers`` pre-LN blocks ``(..., T, D) -> (..., T, D)``; params ``{"blocks": ...}`` (see module doc).
    ``remat``: a per-block policy (see :func:`stack_apply`)."""
    cfg = BlockConfig(num_heads=num_heads, **options)
    remat_policy("nothing" if remat is True else (remat or None))   # an unknown policy fails here

    def init(key, spec):
        if len(spec.shape) < 2:
            raise ShapeError(f"expected input of shape (..., T, D), got {tuple(spec.shape)}")
        blocks = stack_init(cfg, key, spec.shape[-1], num_layers, scan=scan,
                            dtype=param_dtype_for(spec.dtype, param_dtype))
        return output_spec(apply, {"blocks": blocks}, {}, spec), {"blocks": blocks}, {}

    def apply(params, state, x, *, key=None, train=False):
        x, key_mask = split_input(x)
        return stack_apply(cfg, params["blocks"], x, key=key, train=train, key_mask=key_mask, remat=remat)[0], state

    return layer("transformer_stack", init, apply, axes=lambda p: {"blocks": stack_axes(p["blocks"])})


__all__ = ["BlockConfig", "gpt_init", "NAMES", "ACTIVATIONS", "block_axes", "stack_axes",
           "block_init", "mlp", "block_apply", "TransformerBlock", "stack_init",
           "stack_cache", "SCAN_POLICY", "stack_apply", "TransformerStack"]
