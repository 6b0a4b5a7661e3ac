"""Spectral normalisation (Miyato et al., 2018): a layer's weight divided by its top singular value.

* :func:`spectral_normalize`: ``(w / sigma, u_new, sigma)`` by power iteration (a pure function).
* :func:`SpectralNorm`: a combinator wrapping any stateless layer with a weight ``params["w"]`` (Dense, Conv,
  ...); the power-iteration vector ``u`` is the wrapper's state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from deepcore.core import Layer, accum_dtype, layer


def _normalize(v, eps):
    return v * lax.rsqrt(jnp.sum(v * v) + eps)


def spectral_normalize(w, u, *, n_iter: int = 1, eps: float = 1e-12):
    """``(w / sigma, u_new, sigma)``: ``sigma`` estimates the top singular value of ``w`` as a
    ``(prod(w.shape[:-1]), w.shape[-1])`` matrix by ``n_iter`` power iterations from ``u: (w.shape[-1],)``.

    ``u`` and ``v`` are constants for differentiation (Miyato et al., 2018); the gradient flows through ``w``
    in ``w / sigma``. ``n_iter=0`` uses ``u`` as it is (evaluation)."""
    w2 = w.reshape(-1, w.shape[-1])
    wf = lax.stop_gradient(w2).astype(accum_dtype(w.dtype))
    u = u.astype(wf.dtype)
    for _ in range(n_iter):
        u = _normalize(wf.T @ _normalize(wf @ u, eps), eps)
    v = _normalize(wf @ u, eps)
    u, v = lax.stop_gradient(u), lax.stop_gradient(v)
    sigma = jnp.einsum("i,ij,j->", v.astype(w.dtype), w2, u.astype(w.dtype))
    return w / sigma, u, sigma


def SpectralNorm(inner: Layer, *, n_iter: int = 1, eps: float = 1e-12) -> Layer:
    """Wrap a layer with a weight ``params["w"]`` (Dense, Conv, ...) so it uses ``w / sigma(w)``.

    params: the inner layer's; state ``{"u": (w.shape[-1],)}``, the power-iteration vector, carried
    explicitly: ``train=True`` runs ``n_iter`` iterations and returns the updated ``u``; ``train=False`` uses
    the stored ``u`` and returns the state unchanged."""

    def init(key, spec):
        k_inner, k_u = jax.random.split(key)
        out, params, state = inner.init(k_inner, spec)
        if "w" not in params or state:
            raise ValueError(f"SpectralNorm: expected a stateless layer with a weight 'w', got {inner.name}")
        u = _normalize(jax.random.normal(k_u, (params["w"].shape[-1],), jnp.float32), eps)
        return out, params, {"u": u.astype(params["w"].dtype)}

    def apply(params, state, x, *, key=None, train=False):
        w, u, _ = spectral_normalize(params["w"], state["u"], n_iter=n_iter if train else 0, eps=eps)
        y, _ = inner.apply(dict(params, w=w), {}, x, key=key, train=train)
        return y, ({"u": u.astype(state["u"].dtype)} if train else state)

    return layer(inner.name, init, apply, axes=inner.axes)   # the inner layer's parameters, so its axes
