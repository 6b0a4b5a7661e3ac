"""Dropout (Srivastava et al., 2014): inverted dropout, the identity in eval mode; :func:`dropout` and :func:`Dropout`."""
from typing import Sequence

import jax
import jax.numpy as jnp

from deepcore.core import Layer, layer, require_key, simple_init


def _check_rate(rate):
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout: rate is the drop probability and must lie in [0, 1], got {rate}")


def dropout(x, rate: float, *, key=None, train: bool = False, broadcast_dims: Sequence[int] = ()):
    """Zero each unit of ``x: (...)`` with probability ``rate`` and scale the kept ones by ``1/(1-rate)``.

    The identity unless ``train`` and ``rate > 0``; then ``key`` is required. ``broadcast_dims`` share one
    mask along those axes.
    """
    _check_rate(rate)
    if not train or rate == 0.0:
        return x
    require_key(key, "dropout")
    if rate == 1.0:
        return jnp.zeros_like(x)
    shape = list(x.shape)
    for d in broadcast_dims:
        shape[d] = 1
    keep = jax.random.bernoulli(key, 1.0 - rate, tuple(shape))
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


def Dropout(rate: float, *, broadcast_dims: Sequence[int] = ()) -> Layer:
    """The layer of :func:`dropout` (``rate`` is the *drop* probability); shape-preserving, ``(...) -> (...)``.

    Eval mode, and ``rate == 0``, is the identity; train mode needs a ``key``. ``broadcast_dims`` share one
    mask along those axes (e.g. ``(-2, -3)`` drops whole channels of an ``(N, H, W, C)`` image). Under
    ``jax.vmap`` each example gets the same key, so pass per-example keys to vmap if the masks must differ.
    """
    _check_rate(rate)

    def apply(params, state, x, *, key=None, train=False):
        return dropout(x, rate, key=key, train=train, broadcast_dims=broadcast_dims), state

    return layer("dropout", simple_init(lambda key, spec: ({}, {}), apply), apply)
