"""Sampling longer than a decoder-only LM's context: the KV-cache decoder run window after window.

Within one context :func:`deepcore.models.generate.generate` does the work; when the context is full the
newest ``max_len // 2`` ids become the next prompt (positions restart at 0, as in training windows), so every
sampled token sees between ``max_len / 2`` and ``max_len`` earlier ones.
"""
import jax
import jax.numpy as jnp

from deepcore.models.generate import generate

__all__ = ["generate_sliding"]


def generate_sliding(cfg, params, prompt, length: int, key, temperature: float, top_k=None):
    """``length`` ids after ``prompt: (B, P)`` (``P < cfg.max_len``) from the KV-cache decoder: ``(B, length)``.

    Chunk ``i`` (``max_len`` minus its prompt's length tokens) samples with ``fold_in(key, i)``; temperature 0
    is greedy; ``top_k`` as in :func:`~deepcore.models.generate.generate`. Chunks are always whole (the excess
    cut): two compilations at most (the first chunk, the later ones).
    """
    keep = max(1, cfg.max_len // 2)
    ctx = jnp.asarray(prompt, jnp.int32)[:, -(cfg.max_len - 1):]
    out, done, i = [], 0, 0
    while done < length:   # whole chunks (the last one cut afterwards): one compilation per prompt length
        n = cfg.max_len - ctx.shape[1]
        toks, _ = generate(cfg, params, ctx, n, key=jax.random.fold_in(key, i), temperature=max(temperature, 1e-6),
                           top_k=top_k, greedy=temperature == 0)
        out.append(toks)
        ctx = jnp.concatenate([ctx, toks], axis=1)[:, -keep:]
        done, i = done + n, i + 1
    return jnp.concatenate(out, axis=1)[:, :length]
