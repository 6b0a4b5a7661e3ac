"""An encoder-decoder transformer: source tokens ``(..., S)`` and target tokens ``(..., T)`` -> logits ``(..., T, V)``::

    memory = layer_norm(encoder_blocks(embed(src) + src_positions, key_mask=src_mask))   # not causal
    x = embed(tgt) + tgt_positions
    for each decoder block:                                    # pre-LayerNorm, as transformer_stack
        x = x + self_attn(layer_norm(x), causal, KV cache)     # deepcore.layers.attention.self_attention
        x = x + cross_attn(layer_norm(x), memory, src_mask)    # deepcore.layers.cross_attention
        x = x + mlp(layer_norm(x))
    logits = layer_norm(x) @ token_table.T                     # one vocabulary for source and target, tied head

The encoder blocks are :mod:`deepcore.models.transformer_stack`'s (scanned or a list); the decoder blocks are
a list. For decoding, :func:`memory_kvs` computes each decoder layer's cross-attention keys and values once per
source, and :func:`decode` runs target tokens at ``index`` with a self-attention KV cache
(:func:`decoder_cache`); :mod:`deepcore.models.search` drives it (greedy and beam search).
"""
from dataclasses import dataclass, fields, replace
from functools import partial

import jax
import jax.numpy as jnp

from deepcore.core import Layer, ShapeError, compute_dtype_for, layer, output_spec
from deepcore.layers.attention import head_sizes, init_attention, init_cache, self_attention
from deepcore.layers.cross_attention import cross_attention, init_cross_attention, memory_kv
from deepcore.layers.dropout import dropout
from deepcore.layers.embed import embed
from deepcore.layers.norm import init_norm, layer_norm
from deepcore.layers.position import learned_positions
from deepcore.models.transformer_stack import BlockConfig, block_init, mlp, split_keys, stack_apply, stack_init


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig(BlockConfig):
    """``vocab_size`` (shared by source and target), ``d_model``, ``encoder_layers``, ``decoder_layers``,
    ``max_source_len``, ``max_target_len``; the block options are the inherited :class:`BlockConfig` fields
    (``num_heads``, ``dropout``, ``implementation``, ...). ``scan``: the encoder's blocks stacked for ``lax.scan``."""

    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    max_source_len: int
    max_target_len: int
    scan: bool = True

    def block(self, causal: bool) -> BlockConfig:
        shared = {f.name: getattr(self, f.name) for f in fields(BlockConfig)}
        return BlockConfig(**dict(shared, causal=causal, rope=False))

    def replace(self, **changes) -> "Seq2SeqConfig":
        return replace(self, **changes)


def decoder_block_init(cfg: Seq2SeqConfig, key, dtype=jnp.float32) -> dict:
    """``{"ln_self", "self_attn", "ln_cross", "cross", "ln_mlp", "mlp"}`` of one decoder block."""
    k_block, k_cross = jax.random.split(key)
    d = cfg.d_model
    base = block_init(cfg.block(True), k_block, d, dtype)
    cross = init_cross_attention(k_cross, d, cfg.num_heads, head_dim=cfg.head_dim, num_kv_heads=cfg.num_kv_heads,
                                 use_bias=cfg.use_bias, w_init=cfg.w_init, b_init=cfg.b_init, dtype=dtype)
    return {"ln_self": base["ln_attn"], "self_attn": base["attn"], "ln_cross": init_norm(d, dtype),
            "cross": cross, "ln_mlp": base["ln_mlp"], "mlp": base["mlp"]}


def decoder_block_apply(cfg: Seq2SeqConfig, params, x, kv, *, memory_mask=None, key=None, train=False, cache=None,
                        index=0):
    """One decoder block: ``x: (..., T, D)``, ``kv``: this block's :func:`memory_kvs` entry,
    ``memory_mask: (..., S)`` -> ``((..., T, D), cache)``; ``cache``/``index`` as in ``self_attention``."""
    ln = partial(layer_norm, epsilon=cfg.epsilon)
    drop = partial(dropout, rate=cfg.dropout, train=train)
    k1, k2, k3 = split_keys(key, 3)
    h, cache = self_attention(params["self_attn"], ln(params["ln_self"], x), num_heads=cfg.num_heads,
                              num_kv_heads=cfg.num_kv_heads, causal=True, cache=cache, index=index,
                              implementation=cfg.implementation)
    x = x + drop(h, key=k1)
    h = cross_attention(params["cross"], ln(params["ln_cross"], x), kv=kv, memory_mask=memory_mask,
                        num_heads=cfg.num_heads, implementation=cfg.implementation)
    x = x + drop(h, key=k2)
    return x + drop(mlp(cfg, params["mlp"], ln(params["ln_mlp"], x)), key=k3), cache


def seq2seq_init(cfg: Seq2SeqConfig, key, dtype=jnp.float32) -> dict:
    """``{"embed": {"w": (V, D)}, "source_positions", "target_positions": {"table"}, "encoder", "ln_encoder",
    "decoder": [block, ...], "ln_f"}``."""
    ke, ks, kt, kenc, kdec = jax.random.split(key, 5)
    d = cfg.d_model
    return {"embed": {"w": cfg.w_init(ke, (cfg.vocab_size, d), dtype)},
            "source_positions": {"table": cfg.w_init(ks, (cfg.max_source_len, d), dtype)},
            "target_positions": {"table": cfg.w_init(kt, (cfg.max_target_len, d), dtype)},
            "encoder": stack_init(cfg.block(False), kenc, d, cfg.encoder_layers, scan=cfg.scan, dtype=dtype),
            "ln_encoder": init_norm(d, dtype),
            "decoder": [decoder_block_init(cfg, k, dtype) for k in jax.random.split(kdec, cfg.decoder_layers)],
            "ln_f": init_norm(d, dtype)}


def _check(tokens, limit, what):
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim < 1:
        raise ShapeError(f"expected integer {what} token ids (..., L), got {jnp.dtype(tokens.dtype).name} "
                         f"of shape {tuple(tokens.shape)}")
    if tokens.shape[-1] > limit:
        raise ShapeError(f"expected at most {limit} {what} tokens (..., L), got {tuple(tokens.shape)}")


def _embed(cfg, params, tokens, table, index, key, train):
    cdt = compute_dtype_for(params["embed"]["w"].dtype, cfg.dtype)
    x = learned_positions(params[table], embed(params["embed"], tokens).astype(cdt), index=index)
    return dropout(x, cfg.dropout, key=key, train=train)


def encode(cfg: Seq2SeqConfig, params, source, source_mask=None, *, key=None, train=False):
    """``source: (..., S)`` int, ``source_mask: (..., S)`` bool (False = padding) -> memory ``(..., S, D)``."""
    _check(source, cfg.max_source_len, "source")
    k_emb, k_blocks = split_keys(key, 2)
    x = _embed(cfg, params, source, "source_positions", 0, k_emb, train)
    x, _ = stack_apply(cfg.block(False), params["encoder"], x, key=k_blocks, train=train, key_mask=source_mask)
    return layer_norm(params["ln_encoder"], x, epsilon=cfg.epsilon)


def memory_kvs(cfg: Seq2SeqConfig, params, memory) -> list:
    """Each decoder block's cross-attention keys and values of ``memory``: ``[{"k", "v"}: (..., S, K, H)]``."""
    return [memory_kv(p["cross"], memory, num_heads=cfg.num_heads, dtype=cfg.dtype) for p in params["decoder"]]


def decoder_cache(cfg: Seq2SeqConfig, params, batch_shape, max_len=None, dtype=None) -> list:
    """An empty self-attention KV cache per decoder block, ``max_len`` (default ``max_target_len``) long."""
    first = params["decoder"][0]["self_attn"]
    _, kh, h = head_sizes(first, cfg.num_heads, cfg.num_kv_heads)
    dtype = dtype or compute_dtype_for(first["qkv"]["w"].dtype, cfg.dtype)
    return [init_cache(batch_shape, max_len or cfg.max_target_len, kh, h, dtype) for _ in params["decoder"]]


def decode(cfg: Seq2SeqConfig, params, target, kvs, source_mask=None, *, key=None, train=False, cache=None, index=0):
    """``target: (..., T)`` int at positions ``index .. index+T-1``, ``kvs`` from :func:`memory_kvs` ->
    ``(logits (..., T, V), cache)``."""
    _check(target, cfg.max_target_len, "target")
    keys = split_keys(key, 1 + len(params["decoder"]))
    x = _embed(cfg, params, target, "target_positions", index, keys[0], train)
    caches = []
    for i, (p, kv) in enumerate(zip(params["decoder"], kvs)):
        x, c = decoder_block_apply(cfg, p, x, kv, memory_mask=source_mask, key=keys[1 + i], train=train,
                                   cache=None if cache is None else cache[i], index=index)
        caches.append(c)
    x = layer_norm(params["ln_f"], x, epsilon=cfg.epsilon)
    return x @ params["embed"]["w"].T.astype(x.dtype), (None if cache is None else caches)


def seq2seq_apply(cfg: Seq2SeqConfig, params, source, target, source_mask=None, *, key=None, train=False):
    """Teacher-forced logits ``(..., T, V)`` of ``target: (..., T)`` (the decoder input) given ``source: (..., S)``."""
    k_enc, k_dec = split_keys(key, 2)
    memory = encode(cfg, params, source, source_mask, key=k_enc, train=train)
    return decode(cfg, params, target, memory_kvs(cfg, params, memory), source_mask, key=k_dec, train=train)[0]


def EncoderDecoder(cfg: Seq2SeqConfig = None, **options) -> Layer:
    """Encoder-decoder layer: ``apply`` takes ``(source, target)`` or ``(source, target, source_mask)`` and
    returns logits ``(..., T, V)``; initialised from the source spec. Give a :class:`Seq2SeqConfig` or its fields."""
    cfg = cfg if cfg is not None else Seq2SeqConfig(**options)

    def init(key, spec):
        _check(spec, cfg.max_source_len, "source")
        params = seq2seq_init(cfg, key)
        target = jax.ShapeDtypeStruct(spec.shape[:-1] + (min(spec.shape[-1], cfg.max_target_len),), spec.dtype)
        return output_spec(apply, params, {}, (spec, target)), params, {}

    def apply(params, state, x, *, key=None, train=False):
        if not isinstance(x, tuple) or len(x) not in (2, 3):
            raise ShapeError("expected (source, target) or (source, target, source_mask)")
        source, target, mask = (x + (None,))[:3]
        return seq2seq_apply(cfg, params, source, target, mask, key=key, train=train), state

    return layer("encoder_decoder", init, apply)


__all__ = ["Seq2SeqConfig", "decoder_block_init", "decoder_block_apply", "seq2seq_init", "encode", "memory_kvs",
           "decoder_cache", "decode", "seq2seq_apply", "EncoderDecoder"]
