"""Positional embeddings: learned, sinusoidal (added to ``(..., T, D)`` inputs) and rotary (applied to q, k).

* :func:`LearnedPositions` adds a trained table ``(max_len, D)``.
* :func:`SinusoidalPositions` adds the fixed table of Vaswani et al. (2017), no parameters.
* :func:`rope` rotates query and key heads ``(..., T, N, H)`` by their position (Su et al., 2021);
  attention layers apply it when built with ``rope=True``.

Every function takes ``positions`` (integers, ``(T,)`` or ``(..., T)``) so that cached decoding can
embed a token at position ``index`` without building the whole table.
"""
import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import Layer, ShapeError, compute_dtype_for, layer, left_expand, param_dtype_for, simple_init


def sinusoidal(positions, dim: int, base: float = 10000.0, dtype=jnp.float32):
    """``(..., T) -> (..., T, dim)``: ``sin(p / base^(2i/dim))`` at even, ``cos`` at odd features."""
    if dim % 2:
        raise ShapeError(f"sinusoidal positions need an even feature size, got {dim}")
    freqs = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    angles = jnp.asarray(positions, jnp.float32)[..., None]
    angles = angles * left_expand(freqs, angles.ndim)
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return table.reshape(angles.shape[:-1] + (dim,)).astype(dtype)


def rope(x, positions, base: float = 10000.0):
    """Rotary embedding of ``x: (..., T, N, H)`` (H even) at integer ``positions: (T,)`` or ``(..., T)``.

    Feature ``i`` and ``i + H/2`` form a pair rotated by ``positions * base^(-2i/H)`` (the GPT-NeoX layout).
    """
    h = x.shape[-1]
    if h % 2:
        raise ShapeError(f"rotary embedding needs an even head size, got heads of shape {tuple(x.shape)}")
    half = h // 2
    freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.asarray(positions, jnp.float32)[..., None]
    angles = angles * left_expand(freqs, angles.ndim)                                    # (..., T, H/2)
    cos = left_expand(jnp.cos(angles)[..., None, :].astype(x.dtype), x.ndim)            # (..., T, 1, H/2)
    sin = left_expand(jnp.sin(angles)[..., None, :].astype(x.dtype), x.ndim)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def _check_seq(x, max_len=None):
    if x.ndim < 2:
        raise ShapeError(f"expected input of shape (..., T, D), got {tuple(x.shape)}")
    if max_len is not None and x.shape[-2] > max_len:
        raise ShapeError(f"expected at most {max_len} positions (..., T<={max_len}, D), got {tuple(x.shape)}")


def learned_positions(params, x, *, index=0, dtype=None):
    """``x: (..., T, D) + table[index : index + T]``, ``params = {"table": (max_len, D)}`` (``index`` may be
    traced), computed in ``dtype`` (default x's floating dtype)."""
    cdt = compute_dtype_for(x.dtype, dtype)
    table = jax.lax.dynamic_slice_in_dim(params["table"], index, x.shape[-2]).astype(cdt)
    return x.astype(cdt) + left_expand(table, x.ndim)


def sinusoidal_positions(x, *, index=0, base: float = 10000.0):
    """``x: (..., T, D)`` plus the sinusoidal table at positions ``index .. index + T - 1`` (D even)."""
    cdt = compute_dtype_for(x.dtype)
    return x.astype(cdt) + left_expand(sinusoidal(index + jnp.arange(x.shape[-2]), x.shape[-1], base, cdt), x.ndim)


def LearnedPositions(max_len: int, *, w_init=initializers.normal(0.02), param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`learned_positions`, ``(..., T, D) -> (..., T, D)``: adds ``table[:T]``,
    ``table: (max_len, D)``."""

    def make(key, spec):
        _check_seq(spec, max_len)
        return {"table": w_init(key, (max_len, spec.shape[-1]), param_dtype_for(spec.dtype, param_dtype))}, {}

    def apply(params, state, x, *, key=None, train=False):
        _check_seq(x, max_len)
        if x.shape[-1] != params["table"].shape[-1]:
            raise ShapeError(f"expected input (..., T, {params['table'].shape[-1]}), got {tuple(x.shape)}")
        return learned_positions(params, x, dtype=dtype), state

    return layer("positions", simple_init(make, apply), apply, axes={"table": ("max_len", "embed")})


def SinusoidalPositions(base: float = 10000.0) -> Layer:
    """The layer of :func:`sinusoidal_positions`, ``(..., T, D) -> (..., T, D)``, no parameters."""

    def apply(params, state, x, *, key=None, train=False):
        _check_seq(x)
        return sinusoidal_positions(x, base=base), state

    return layer("positions", simple_init(lambda key, spec: ({}, {}), apply), apply)


__all__ = ["sinusoidal", "rope", "learned_positions", "sinusoidal_positions", "LearnedPositions", "SinusoidalPositions"]
