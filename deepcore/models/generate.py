"""Sampling from a decoder-only LM (:mod:`deepcore.models.transformer`): greedy, temperature, top-k.

* :func:`generate` runs the prompt once through the model filling a fixed-size KV cache, then feeds one
  token per step inside ``lax.scan``: each step costs one token's worth of work.
* :func:`generate_uncached` is the reference: each step recomputes the whole (fixed-length, causally
  masked) context. Same tokens under greedy decoding; slower.

Both are jit-compiled once per (config, prompt shape, ``num_tokens``, ``top_k``, ``greedy``) and return
``(tokens (B, num_tokens), logits (B, num_tokens, V))``, the logits each token was drawn from.

``unroll_layers=True`` (default) runs the blocks as a Python loop inside the token loop even when the model
keeps them stacked for ``lax.scan``: the per-layer weights are sliced once, outside the token loop, instead
of in every step (2.5x faster decoding of a 4-layer d256 GPT on CPU); compile time then grows with depth.
"""
from functools import partial

import jax
import jax.numpy as jnp

from deepcore.core import ShapeError
from deepcore.models.transformer import LMConfig, lm_apply, lm_cache, to_unscanned


def sample_logits(key, logits, *, temperature=1.0, top_k=None, greedy=False):
    """Draw token ids from ``logits: (..., V)``: argmax if ``greedy``, else softmax(logits / temperature)
    restricted to the ``top_k`` largest (all if None)."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    _require_sampling_key(key, "sample_logits")
    logits = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _require_sampling_key(key, where: str):
    if key is None:
        raise ValueError(f"{where}: sampling (greedy=False) needs key=jax.random.PRNGKey(seed), got key=None; "
                         f"pass a key, or greedy=True for argmax decoding")


def _check(cfg: LMConfig, prompt, num_tokens):
    if prompt.ndim != 2 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ShapeError(f"expected an integer prompt (B, P), got {jnp.dtype(prompt.dtype).name} {tuple(prompt.shape)}")
    if prompt.shape[1] + num_tokens > cfg.max_len:
        raise ShapeError(f"prompt length {prompt.shape[1]} + {num_tokens} new tokens exceeds max_len={cfg.max_len}")


def _layout(cfg: LMConfig, params, unroll_layers):
    if unroll_layers and cfg.scan:
        return cfg.replace(scan=False), to_unscanned(params)
    return cfg, params


def _keys(key, num_tokens, greedy):
    if greedy and key is None:
        return jnp.zeros((num_tokens, 2), jnp.uint32)
    _require_sampling_key(key, "generate")
    return jax.random.split(key, num_tokens)


@partial(jax.jit, static_argnames=("cfg", "num_tokens", "top_k", "greedy", "unroll_layers"))
def generate(cfg: LMConfig, params, prompt, num_tokens: int, *, key=None, temperature=1.0, top_k=None,
             greedy=False, unroll_layers=True):
    """Sample ``num_tokens`` continuations of ``prompt: (B, P)`` with a KV cache of ``P + num_tokens``."""
    _check(cfg, prompt, num_tokens)
    cfg, params = _layout(cfg, params, unroll_layers)
    b, p = prompt.shape
    cache = lm_cache(cfg, params, (b,), p + num_tokens)
    logits, cache = lm_apply(cfg, params, prompt, cache=cache, index=0)

    def step(carry, k):
        cache, last, i = carry
        tok = sample_logits(k, last, temperature=temperature, top_k=top_k, greedy=greedy)
        nxt, cache = lm_apply(cfg, params, tok[:, None], cache=cache, index=p + i)
        return (cache, nxt[:, 0], i + 1), (tok, last)

    _, (toks, lgs) = jax.lax.scan(step, (cache, logits[:, -1], 0), _keys(key, num_tokens, greedy))
    return toks.T, jnp.swapaxes(lgs, 0, 1)


@partial(jax.jit, static_argnames=("cfg", "num_tokens", "top_k", "greedy", "unroll_layers"))
def generate_uncached(cfg: LMConfig, params, prompt, num_tokens: int, *, key=None, temperature=1.0, top_k=None,
                      greedy=False, unroll_layers=True):
    """The reference decoder: every step runs the model on the full ``P + num_tokens`` buffer."""
    _check(cfg, prompt, num_tokens)
    cfg, params = _layout(cfg, params, unroll_layers)
    b, p = prompt.shape
    buf = jnp.zeros((b, p + num_tokens), prompt.dtype).at[:, :p].set(prompt)

    def step(carry, k):
        buf, i = carry
        logits, _ = lm_apply(cfg, params, buf)
        last = jax.lax.dynamic_index_in_dim(logits, p + i - 1, axis=1, keepdims=False)
        tok = sample_logits(k, last, temperature=temperature, top_k=top_k, greedy=greedy)
        buf = jax.lax.dynamic_update_index_in_dim(buf, tok.astype(buf.dtype), p + i, axis=1)
        return (buf, i + 1), (tok, last)

    _, (toks, lgs) = jax.lax.scan(step, (buf, 0), _keys(key, num_tokens, greedy))
    return toks.T, jnp.swapaxes(lgs, 0, 1)


__all__ = ["sample_logits", "generate", "generate_uncached"]
