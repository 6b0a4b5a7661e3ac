"""Attribution: which input features a prediction depends on. Pure functions, batched with ``jax.vmap``, jit-able.

Every method takes ``fn``, a batched function ``x (B, ...) -> outputs (B, K)`` (logits) or ``(B,)`` (a score),
inputs ``x (B, ...)`` and ``target``: the class to explain per example (an int, an int array ``(B,)``, or
``None`` for the predicted class; ignored for ``(B,)`` outputs). Each example is explained on its own
(``fn`` sees it as a batch of one), and the attribution has the shape of ``x``::

    fn = lambda x: model.apply(params, state, x)[0]
    s = saliency(fn, images)                                   # d logit[target] / d x, (B, 28, 28, 1)
    ig = integrated_gradients(fn, images, steps=64)            # baseline: zeros
    delta = completeness_gap(fn, images, ig)                   # (B,): sum(ig) - (f(x) - f(baseline))

``fn`` must be deterministic (eval mode). Attributions are returned in ``x``'s floating dtype.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from deepcore.core import accum_dtype

Fn = Callable[[jax.Array], jax.Array]


def _jit(*static):
    """Compile a method once per ``fn`` and input signature (``fn`` and ``static`` arguments are static)."""
    return functools.partial(jax.jit, static_argnames=("fn",) + static)


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _targets(fn: Fn, x, target):
    """Per-example class indices ``(B,)`` (the predicted class when ``target`` is None)."""
    b = x.shape[0]
    if target is None:
        out = jax.lax.stop_gradient(fn(x))
        return jnp.argmax(out, axis=-1).astype(jnp.int32) if out.ndim == 2 else jnp.zeros((b,), jnp.int32)
    t = jnp.asarray(target, jnp.int32)
    if t.ndim == 0:
        return jnp.full((b,), t)
    if t.shape != (b,):
        raise ValueError(f"target: expected an int or an int array of shape ({b},), got shape {tuple(t.shape)}")
    return t


def score_fn(fn: Fn) -> Callable:
    """``score(x_one, t) -> scalar``: the output for class ``t`` of a single example ``x_one`` (no batch axis)."""

    def score(x_one, t):
        out = fn(x_one[None])
        if out.ndim not in (1, 2) or out.shape[0] != 1:
            raise ValueError(f"fn must map a batch (B, ...) to outputs (B, K) or (B,), got {tuple(out.shape)} "
                             f"for a batch of 1")
        out = out[0]
        return (out if out.ndim == 0 else out[t]).astype(accum_dtype(out.dtype))

    return score


def scores(fn: Fn, x, target=None):
    """``(B,)``: the explained output, ``fn(x)[b, target[b]]``."""
    x = _float(x)
    t = _targets(fn, x, target)
    return jax.vmap(score_fn(fn))(x, t)


def _grad(fn: Fn):
    """``(x (B, ...), t (B,)) -> d score / d x`` per example."""
    return jax.vmap(jax.grad(score_fn(fn)))


@_jit()
def saliency(fn: Fn, x, target=None) -> jax.Array:
    """Vanilla gradients (Simonyan et al., 2014): ``d fn(x)[target] / d x``, shape of ``x``."""
    x = _float(x)
    return _grad(fn)(x, _targets(fn, x, target)).astype(x.dtype)


@_jit()
def gradient_x_input(fn: Fn, x, target=None) -> jax.Array:
    """Gradient times input: ``x * d fn(x)[target] / d x`` (Shrikumar et al., 2016), shape of ``x``."""
    x = _float(x)
    return x * saliency(fn, x, target)


@_jit("num_samples", "squared")
def smoothgrad(fn: Fn, x, target=None, *, key, num_samples: int = 25, noise: float = 0.15,
               squared: bool = False) -> jax.Array:
    """SmoothGrad (Smilkov et al., 2017): the mean gradient over ``num_samples`` noisy copies of each input.

    Noise is Gaussian with std ``noise * (max(x_b) - min(x_b))`` per example. ``squared`` averages squared
    gradients (SmoothGrad-Squared). The target is fixed from the clean input. Shape of ``x``.
    """
    x = _float(x)
    t = _targets(fn, x, target)
    axes = tuple(range(1, x.ndim))
    sigma = noise * (jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True))
    grad = _grad(fn)

    def one(k):
        g = grad(x + sigma * jax.random.normal(k, x.shape, x.dtype), t)
        return g * g if squared else g

    return jnp.mean(jax.vmap(one)(jax.random.split(key, num_samples)), axis=0).astype(x.dtype)


@_jit("steps", "chunk")
def integrated_gradients(fn: Fn, x, target=None, *, baseline=None, steps: int = 50,
                         chunk: Optional[int] = None) -> jax.Array:
    """Integrated gradients (Sundararajan et al., 2017) with the trapezoidal rule on ``steps`` intervals.

    ``(x - baseline) * integral_0^1 grad f(baseline + a (x - baseline)) da``; ``baseline`` broadcasts
    against ``x`` (default zeros). ``chunk``: evaluate that many path points at a time (memory
    ``chunk * B`` gradients; default all ``steps + 1`` at once). Shape of ``x``. Completeness
    (``sum = f(x) - f(baseline)``) holds up to the quadrature error: see :func:`completeness_gap`.
    """
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    x = _float(x)
    base = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    t = _targets(fn, x, target)
    grad = _grad(fn)
    n = steps + 1
    chunk = n if chunk is None else max(1, min(int(chunk), n))
    pad = -n % chunk
    alphas = jnp.linspace(0.0, 1.0, n, dtype=x.dtype)
    weights = jnp.full((n,), 1.0 / steps, x.dtype).at[0].set(0.5 / steps).at[-1].set(0.5 / steps)
    alphas = jnp.concatenate([alphas, jnp.zeros((pad,), x.dtype)]).reshape(-1, chunk)
    weights = jnp.concatenate([weights, jnp.zeros((pad,), x.dtype)]).reshape(-1, chunk)
    diff = x - base

    def body(total, aw):
        a, w = aw
        g = jax.vmap(lambda ai: grad(base + ai * diff, t))(a)          # (chunk, B, ...)
        return total + jnp.tensordot(w, g, axes=1), None

    total, _ = jax.lax.scan(body, jnp.zeros_like(x), (alphas, weights))
    return diff * total


@_jit()
def completeness_gap(fn: Fn, x, attributions, target=None, *, baseline=None) -> jax.Array:
    """``(B,)``: ``sum(attributions_b) - (f(x_b) - f(baseline_b))`` for the explained output (0 when complete)."""
    x = _float(x)
    base = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    t = _targets(fn, x, target)
    score = jax.vmap(score_fn(fn))
    total = jnp.sum(attributions.reshape(x.shape[0], -1), axis=1)
    return total - (score(x, t) - score(base, t))


def steps_for_tolerance(fn: Fn, x, target=None, *, baseline=None, rtol: float = 0.01, atol: float = 1e-4,
                        candidates: Sequence[int] = (4, 8, 16, 32, 64, 128, 256, 512),
                        chunk: Optional[int] = None) -> dict:
    """The fewest integration ``steps`` (among ``candidates``) whose completeness gap meets the tolerance.

    The tolerance holds when ``|gap_b| <= atol + rtol * |f(x_b) - f(baseline_b)|`` for every example.
    Returns ``{"steps": int or None (none met it), "max_gap": ..., "max_rel_gap": ..., "tried": {steps: max_gap}}``.
    Each candidate compiles once (the step count is a shape); the search itself runs on the host.
    """
    x = _float(x)
    t = _targets(fn, x, target)
    base = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    score = jax.vmap(score_fn(fn))
    span = jnp.abs(score(x, t) - score(base, t))
    tried = {}
    for s in sorted(int(c) for c in candidates):
        attr = integrated_gradients(fn, x, t, baseline=base, steps=s, chunk=chunk)
        gap = jnp.abs(completeness_gap(fn, x, attr, t, baseline=base))
        tried[s] = float(jnp.max(gap))
        if bool(jnp.all(gap <= atol + rtol * span)):
            return {"steps": s, "max_gap": tried[s], "max_rel_gap": float(jnp.max(gap / jnp.maximum(span, 1e-12))),
                    "tried": tried}
    return {"steps": None, "max_gap": tried[max(tried)] if tried else None, "max_rel_gap": None, "tried": tried}


def attribution_map(attributions, reduce: str = "abs_sum") -> jax.Array:
    """``(B, H, W, C) -> (B, H, W)`` for pictures: ``"abs_sum"`` or ``"abs_max"`` over channels, or ``"sum"``."""
    a = jnp.asarray(attributions)
    if reduce == "abs_sum":
        return jnp.sum(jnp.abs(a), axis=-1)
    if reduce == "abs_max":
        return jnp.max(jnp.abs(a), axis=-1)
    if reduce == "sum":
        return jnp.sum(a, axis=-1)
    raise ValueError(f"attribution_map: reduce must be 'abs_sum', 'abs_max' or 'sum', got {reduce!r}")
