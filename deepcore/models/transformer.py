"""Pre-LayerNorm transformer blocks, stacks (scanned or unrolled) and a decoder-only language model.

A block maps ``(..., T, D) -> (..., T, D)``::

    x = x + dropout(attn(layer_norm(x)))
    x = x + dropout(proj(gelu(fc(layer_norm(x)))))        # fc: D -> mlp_ratio * D

Block parameters: ``{"ln_attn", "attn": {"qkv", "out"}, "ln_mlp", "mlp": {"fc", "proj"}}``.

A stack keeps its blocks in ``params["blocks"]`` in one of two layouts:

* scanned (``scan=True``): one block dict whose leaves have a leading layer axis ``(L, ...)``, run with
  ``lax.scan`` so compile time stays flat in depth;
* unrolled (``scan=False``): a list of ``L`` block dicts, run by a Python loop.

A plain ``lax.scan`` saves, for the backward pass, every intermediate of the body in stacked ``(L, ...)``
buffers (the GELU's and softmax's elementwise pieces too); the scanned stack therefore runs its body under
the remat policy ``SCAN_POLICY = "dots"`` (keep the matmul outputs, recompute the elementwise work), which
made the scanned W4 step faster than the unrolled one instead of 1.2x slower. ``remat`` picks another policy.

:func:`stack_layers` / :func:`unstack_layers` (and :func:`to_scanned` / :func:`to_unscanned` on a whole
model) convert between them. Indexing stacked parameters inside a Python loop (``blocks["w"][i]``) is the
slow mix of both and is never done here.

Configuration lives in frozen dataclasses (:class:`BlockConfig`, :class:`LMConfig`), hashable so they can be
static arguments of ``jax.jit``; the layers (:func:`TransformerBlock`, :func:`TransformerStack`,
:func:`TransformerLM`) wrap the functions ``block_apply``, ``stack_apply`` and ``lm_apply``, which also take
a KV cache for decoding (see :mod:`deepcore.models.generate`).
"""
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name as name

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, output_spec, param_dtype_for
from deepcore.layers.attention import IMPLEMENTATIONS, init_attention, init_cache, self_attention
from deepcore.layers.dropout import Dropout
from deepcore.layers.embed import lookup
from deepcore.layers.norm import LayerNorm
from deepcore.layers.position import sinusoidal
from deepcore.layers.remat import checkpointed, remat_policy

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


# ----------------------------------------------------------------------------- one block

def block_init(cfg: BlockConfig, key, d_model: int, dtype=jnp.float32) -> dict:
    """Parameters of one block on ``d_model`` features, in ``dtype``."""
    ka, kf, kp, kb1, kb2 = jax.random.split(key, 5)
    norm = LayerNorm(epsilon=cfg.epsilon)
    ln_attn, ln_mlp = (norm.init(key, jax.ShapeDtypeStruct((d_model,), dtype))[1] for _ in range(2))  # own buffers
    hidden = cfg.mlp_ratio * d_model
    mlp = {"fc": {"w": cfg.w_init(kf, (d_model, hidden), dtype)}, "proj": {"w": cfg.w_init(kp, (hidden, d_model), dtype)}}
    if cfg.use_bias:
        mlp["fc"]["b"] = cfg.b_init(kb1, (hidden,), dtype)
        mlp["proj"]["b"] = cfg.b_init(kb2, (d_model,), dtype)
    attn = init_attention(ka, d_model, cfg.num_heads, head_dim=cfg.head_dim, num_kv_heads=cfg.num_kv_heads,
                          use_bias=cfg.use_bias, w_init=cfg.w_init, b_init=cfg.b_init, dtype=dtype)
    return {"ln_attn": ln_attn, "attn": attn, "ln_mlp": ln_mlp, "mlp": mlp}


def _dense(p, x):
    y = x @ p["w"]
    return y + p["b"] if "b" in p else y


NAMES = ("attn_in", "attn_out", "mlp_in", "mlp_hidden", "mlp_out")   # checkpoint_name tags, for remat "names:"


def block_apply(cfg: BlockConfig, params, x, *, key=None, train=False, key_mask=None, segment_ids=None, cache=None,
                index=0):
    """One block: ``x: (..., T, D) -> ((..., T, D), cache)``; masks, ``cache``/``index`` as in
    ``self_attention``. Intermediate values are tagged with the :data:`NAMES` (for remat policies)."""
    d = params["ln_attn"]["scale"].shape[0]
    if x.ndim < 2 or x.shape[-1] != d:
        raise ShapeError(f"expected input of shape (..., T, {d}), got {tuple(x.shape)}")
    cdt = compute_dtype_for(x.dtype, cfg.dtype)
    x = x.astype(cdt)
    ln, drop = LayerNorm(epsilon=cfg.epsilon, dtype=cdt), Dropout(cfg.dropout)
    k_attn, k_mlp = (None, None) if key is None else jax.random.split(key)

    h = name(ln.apply(params["ln_attn"], {}, x)[0], "attn_in")
    h, cache = self_attention(params["attn"], h, num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads,
                              causal=cfg.causal, key_mask=key_mask, segment_ids=segment_ids, rope=cfg.rope,
                              rope_base=cfg.rope_base, cache=cache, index=index, implementation=cfg.implementation,
                              dtype=cdt)
    x = x + drop.apply({}, {}, name(h, "attn_out"), key=k_attn, train=train)[0]

    mlp = cast(params["mlp"], cdt)
    h = name(ln.apply(params["ln_mlp"], {}, x)[0], "mlp_in")
    h = name(_dense(mlp["fc"], h), "mlp_hidden")
    h = name(_dense(mlp["proj"], jax.nn.gelu(h, approximate=cfg.approximate_gelu)), "mlp_out")
    x = x + drop.apply({}, {}, h, key=k_mlp, train=train)[0]
    return x, cache


def _split_input(x):
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
        x, key_mask = _split_input(x)
        return block_apply(cfg, params, x, key=key, train=train, key_mask=key_mask)[0], state

    return layer("transformer_block", init, apply)


# ----------------------------------------------------------------------------- stacks

def stack_layers(blocks: list) -> dict:
    """A list of ``L`` same-shaped block dicts -> one dict with leaves ``(L, ...)`` (for ``lax.scan``)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *blocks)


def unstack_layers(stacked: dict) -> list:
    """Inverse of :func:`stack_layers`: a dict with leaves ``(L, ...)`` -> a list of ``L`` block dicts."""
    n = jax.tree.leaves(stacked)[0].shape[0]
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(n)]


def to_scanned(params: dict) -> dict:
    """A model's params with ``params["blocks"]`` in the scanned layout (unchanged if already)."""
    blocks = params["blocks"]
    return {**params, "blocks": stack_layers(blocks) if isinstance(blocks, (list, tuple)) else blocks}


def to_unscanned(params: dict) -> dict:
    """A model's params with ``params["blocks"]`` as a list of per-layer dicts (unchanged if already)."""
    blocks = params["blocks"]
    return {**params, "blocks": list(blocks) if isinstance(blocks, (list, tuple)) else unstack_layers(blocks)}


def stack_init(cfg: BlockConfig, key, d_model: int, num_layers: int, *, scan=True, dtype=jnp.float32):
    """Parameters of ``num_layers`` blocks: stacked (``scan``) or a list; the same values either way."""
    blocks = [block_init(cfg, k, d_model, dtype) for k in jax.random.split(key, num_layers)]
    return stack_layers(blocks) if scan else blocks


def stack_cache(cfg: BlockConfig, blocks, batch_shape, max_len, dtype=jnp.float32):
    """An empty KV cache for a stack, in the layout of ``blocks`` (``(L, *batch, S, K, H)`` or a list)."""
    scanned = not isinstance(blocks, (list, tuple))
    first = jax.tree.map(lambda a: a[0], blocks) if scanned else blocks[0]
    n = jax.tree.leaves(blocks)[0].shape[0] if scanned else len(blocks)
    qkv = first["attn"]["qkv"]["w"].shape[1]
    kv_heads = cfg.num_kv_heads or cfg.num_heads
    one = init_cache(batch_shape, max_len, kv_heads, qkv // (cfg.num_heads + 2 * kv_heads), dtype)
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), one) if scanned else [one] * n


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
    scanned = not isinstance(blocks, (list, tuple))
    n = jax.tree.leaves(blocks)[0].shape[0] if scanned else len(blocks)
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
        x, key_mask = _split_input(x)
        return stack_apply(cfg, params["blocks"], x, key=key, train=train, key_mask=key_mask, remat=remat)[0], state

    return layer("transformer_stack", init, apply)


# ----------------------------------------------------------------------------- decoder-only language model

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
    params["ln_f"] = LayerNorm(epsilon=cfg.epsilon).init(key, jax.ShapeDtypeStruct((cfg.d_model,), dtype))[1]
    if not cfg.tie_embeddings:
        params["head"] = {"w": cfg.w_init(kh, (cfg.d_model, cfg.vocab_size), dtype)}
        if cfg.head_bias:
            params["head"]["b"] = cfg.b_init(kh, (cfg.vocab_size,), dtype)
    return params


def lm_cache(cfg: LMConfig, params, batch_shape, max_len=None, dtype=jnp.float32):
    """An empty KV cache for :func:`lm_apply`, ``max_len`` (default ``cfg.max_len``) positions long."""
    return stack_cache(cfg.block, params["blocks"], batch_shape, max_len or cfg.max_len, dtype)


def lm_apply(cfg: LMConfig, params, tokens, *, key=None, train=False, key_mask=None, segment_ids=None, cache=None,
             index=0):
    """``tokens: (..., T)`` int -> ``(logits (..., T, V), cache)``; the tokens sit at ``index .. index+T-1``.
    ``segment_ids: (..., T)``: packed sequences, attending within their segment only."""
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim < 1:
        raise ShapeError(f"expected integer token ids (..., T), got {jnp.dtype(tokens.dtype).name} "
                         f"input of shape {tuple(tokens.shape)}")
    t = tokens.shape[-1]
    if t > cfg.max_len:
        raise ShapeError(f"expected at most max_len={cfg.max_len} tokens (..., T), got {tuple(tokens.shape)}")
    cdt = compute_dtype_for(params["embed"]["w"].dtype, cfg.dtype)
    k_emb, k_blocks = (None, None) if key is None else jax.random.split(key)
    x = lookup(params["embed"]["w"], tokens).astype(cdt)
    if cfg.positions == "learned":
        x = x + jax.lax.dynamic_slice_in_dim(params["positions"]["table"], index, t).astype(cdt)
    elif cfg.positions == "sinusoidal":
        x = x + sinusoidal(index + jnp.arange(t), cfg.d_model, dtype=cdt)
    x = Dropout(cfg.dropout).apply({}, {}, x, key=k_emb, train=train)[0]
    x, cache = stack_apply(cfg.block, params["blocks"], x, key=k_blocks, train=train, key_mask=key_mask,
                           segment_ids=segment_ids, cache=cache, index=index, remat=cfg.remat)
    x = LayerNorm(epsilon=cfg.epsilon, dtype=cdt).apply(params["ln_f"], {}, x)[0]
    head = {"w": params["embed"]["w"].T} if cfg.tie_embeddings else params["head"]
    return _dense(cast(head, cdt), x), cache


def TransformerLM(cfg: Optional[LMConfig] = None, *, param_dtype=None, **options) -> Layer:
    """Decoder-only LM layer, tokens ``(..., T)`` -> logits ``(..., T, V)``.

    Give an :class:`LMConfig` or its fields: ``TransformerLM(vocab_size=96, d_model=256, num_layers=4,
    num_heads=4, max_len=128)``. Call ``apply`` with tokens or ``(tokens, key_mask)``.
    """
    cfg = cfg if cfg is not None else LMConfig(**options)

    def init(key, spec):
        if len(spec.shape) < 1 or not jnp.issubdtype(spec.dtype, jnp.integer):
            raise ShapeError(f"expected integer token ids (..., T), got {jnp.dtype(spec.dtype).name} "
                             f"input of shape {tuple(spec.shape)}")
        params = lm_init(cfg, key, jnp.dtype(param_dtype or jnp.float32))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, key_mask = _split_input(x)
        return lm_apply(cfg, params, x, key=key, train=train, key_mask=key_mask)[0], state

    return layer("transformer_lm", init, apply)


__all__ = ["BlockConfig", "LMConfig", "block_init", "block_apply", "TransformerBlock", "stack_layers",
           "unstack_layers", "to_scanned", "to_unscanned", "stack_init", "stack_cache", "stack_apply",
           "TransformerStack", "lm_init", "lm_cache", "lm_apply", "TransformerLM", "gpt_init"]
