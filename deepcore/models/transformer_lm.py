"""A decoder-only transformer language model: tokens ``(..., T)`` int -> logits ``(..., T, vocab_size)``::

    x = dropout(embed(tokens) + positions)
    x = blocks(x)                                  # deepcore.models.transformer_stack
    logits = head(layer_norm(x))                   # head: its own (D, V) matrix, or the token table transposed
"""
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

import jax
import jax.numpy as jnp

from deepcore.core import Layer, ShapeError, compute_dtype_for, layer, output_spec
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout
from deepcore.layers.embed import embed
from deepcore.layers.norm import init_norm, layer_norm
from deepcore.layers.position import learned_positions, sinusoidal_positions
from deepcore.layers.remat import remat_policy
from deepcore.layers.logical import constrain
from deepcore.models.transformer_stack import (ACTIVATIONS, BlockConfig, split_input, split_keys, stack_apply,
                                               stack_axes, stack_cache, stack_init)


@dataclass(frozen=True, kw_only=True)
class LMConfig(BlockConfig):
    """A decoder-only LM: tokens ``(..., T)`` int -> logits ``(..., T, vocab_size)``, ``T <= max_len``.

    ``positions``: ``"learned"`` (a ``(max_len, D)`` table), ``"sinusoidal"``, ``"rope"`` (rotary, in every
    attention layer) or ``"none"``. ``tie_embeddings``: the head is the token table transposed. The block
    options (``num_heads``, ``num_kv_heads``, ``dropout``, ``implementation``, ...) are the inherited
    :class:`BlockConfig` fields, given by keyword; every block is causal, and rotary iff ``positions="rope"``.
    """

    vocab_size: int
    d_model: int
    num_layers: int
    max_len: int
    positions: str = "learned"
    tie_embeddings: bool = False
    head_bias: bool = False
    scan: bool = True
    remat: Any = None   # a per-block remat policy (True: "nothing"), see stack_apply

    def __post_init__(self):
        super().__post_init__()
        remat_policy("nothing" if self.remat is True else (self.remat or None))
        if self.positions not in ("learned", "sinusoidal", "rope", "none"):
            raise ValueError(f"positions must be 'learned', 'sinusoidal', 'rope' or 'none', got {self.positions!r}")
        if not self.causal or self.rope:
            raise ValueError("LMConfig: a decoder LM is causal, and rotary positions are positions='rope' "
                             "(leave causal and rope at their defaults)")

    @property
    def block(self) -> BlockConfig:
        shared = {f.name: getattr(self, f.name) for f in fields(BlockConfig)}
        return BlockConfig(**dict(shared, causal=True, rope=self.positions == "rope"))

    def replace(self, **changes) -> "LMConfig":
        return replace(self, **changes)


def lm_init(cfg: LMConfig, key, dtype=jnp.float32) -> dict:
    """``{"embed": {"w": (V, D)}, "positions": {"table"} (learned), "blocks", "ln_f", "head": {"w"}}``."""
    ke, kp, kb, kh = jax.random.split(key, 4)
    params = {"embed": {"w": cfg.w_init(ke, (cfg.vocab_size, cfg.d_model), dtype)}}
    if cfg.positions == "learned":
        params["positions"] = {"table": cfg.w_init(kp, (cfg.max_len, cfg.d_model), dtype)}
    params["blocks"] = stack_init(cfg.block, kb, cfg.d_model, cfg.num_layers, scan=cfg.scan, dtype=dtype)
    params["ln_f"] = init_norm(cfg.d_model, dtype)
    if not cfg.tie_embeddings:
        params["head"] = {"w": cfg.w_init(kh, (cfg.d_model, cfg.vocab_size), dtype)}
        if cfg.head_bias:
            params["head"]["b"] = cfg.b_init(kh, (cfg.vocab_size,), dtype)
    return params


def lm_axes(cfg: LMConfig, params) -> dict:
    """Logical axis names mirroring :func:`lm_init`'s ``params`` (arrays or shapes)."""
    axes = {"embed": {"w": ("vocab", "embed")}, "blocks": stack_axes(params["blocks"]),
            "ln_f": {"scale": ("norm",), "bias": ("norm",)}, "head": {"w": ("embed", "vocab"), "b": ("vocab",)}}
    if "positions" in params:
        axes["positions"] = {"table": ("max_len", "embed")}
    return axes


def lm_dtype(cfg: LMConfig, params):
    """The model's compute dtype: ``cfg.dtype``, else the token table's; the KV cache is kept in it too."""
    return compute_dtype_for(params["embed"]["w"].dtype, cfg.dtype)


def lm_cache(cfg: LMConfig, params, batch_shape, max_len=None, dtype=None):
    """An empty KV cache for :func:`lm_apply`, ``max_len`` (default ``cfg.max_len``) positions long, in
    ``dtype`` (default :func:`lm_dtype`)."""
    dtype = lm_dtype(cfg, params) if dtype is None else dtype
    return stack_cache(cfg.block, params["blocks"], batch_shape, max_len or cfg.max_len, dtype)


def _check_tokens(cfg: LMConfig, tokens):
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or len(tokens.shape) < 1:
        raise ShapeError(f"expected integer token ids (..., T), got {jnp.dtype(tokens.dtype).name} "
                         f"input of shape {tuple(tokens.shape)}")
    if tokens.shape[-1] > cfg.max_len:
        raise ShapeError(f"expected at most max_len={cfg.max_len} tokens (..., T), got {tuple(tokens.shape)}")


def lm_apply(cfg: LMConfig, params, tokens, *, key=None, train=False, key_mask=None, segment_ids=None, cache=None,
             index=0):
    """``tokens: (..., T)`` int -> ``(logits (..., T, V), cache)``; the tokens sit at ``index .. index+T-1``.
    ``segment_ids: (..., T)``: packed sequences, attending within their segment only."""
    _check_tokens(cfg, tokens)
    cdt = lm_dtype(cfg, params)
    k_emb, k_blocks = split_keys(key, 2)
    x = embed(params["embed"], tokens).astype(cdt)
    if cfg.positions == "learned":
        x = learned_positions(params["positions"], x, index=index)
    elif cfg.positions == "sinusoidal":
        x = sinusoidal_positions(x, index=index)
    x = constrain(dropout(x, cfg.dropout, key=k_emb, train=train), ACTIVATIONS)
    x, cache = stack_apply(cfg.block, params["blocks"], x, key=k_blocks, train=train, key_mask=key_mask,
                           segment_ids=segment_ids, cache=cache, index=index, remat=cfg.remat)
    head = {"w": params["embed"]["w"].T} if cfg.tie_embeddings else params["head"]
    return dense(head, layer_norm(params["ln_f"], x, epsilon=cfg.epsilon)), cache


def TransformerLM(cfg: Optional[LMConfig] = None, *, param_dtype=None, **options) -> Layer:
    """Decoder-only LM layer, tokens ``(..., T)`` -> logits ``(..., T, V)``.

    Give an :class:`LMConfig` or its fields: ``TransformerLM(vocab_size=96, d_model=256, num_layers=4,
    num_heads=4, max_len=128)``. Call ``apply`` with tokens or ``(tokens, key_mask)``.
    """
    cfg = cfg if cfg is not None else LMConfig(**options)

    def init(key, spec):
        _check_tokens(cfg, spec)
        params = lm_init(cfg, key, jnp.dtype(param_dtype or jnp.float32))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, key_mask = split_input(x)
        return lm_apply(cfg, params, x, key=key, train=train, key_mask=key_mask)[0], state

    return layer("transformer_lm", init, apply, axes=lambda p: lm_axes(cfg, p))


__all__ = ["LMConfig", "lm_init", "lm_axes", "lm_dtype", "lm_cache", "lm_apply", "TransformerLM"]
