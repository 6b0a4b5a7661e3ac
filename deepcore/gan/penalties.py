"""Gradient penalties on the discriminator's input gradient (their parameter gradients are second order).

``d_fn(x) -> logits (B,)`` is the discriminator as a function of its input batch alone (close over params,
state and labels). The per-example gradient is ``grad_x sum(d_fn(x))``, exact because examples do not
interact in ``d_fn`` (no batch statistics in D).

The GAN step takes a penalty as a callable ``penalty(d_fn, real, fake, key) -> scalar``; :data:`PENALTIES`
holds the named ones in that form (``"r1"``, ``"wgan-gp"``).
"""
import jax
import jax.numpy as jnp

from deepcore.core import accum_dtype


def _input_grad_sq_norm(d_fn, x):
    g = jax.grad(lambda x: jnp.sum(d_fn(x)))(x)
    g = g.reshape(g.shape[0], -1).astype(accum_dtype(g.dtype))
    return jnp.sum(jnp.square(g), axis=-1)


def r1_penalty(d_fn, real):
    """R1 (Mescheder et al., 2018): ``mean_i |grad_x D(real_i)|^2`` (unweighted; the usual ``gamma / 2``
    weight is the caller's). ``real: (B, ...)``."""
    return jnp.mean(_input_grad_sq_norm(d_fn, real))


def gradient_penalty(d_fn, real, fake, key, *, target: float = 1.0, eps: float = 1e-12):
    """WGAN-GP (Gulrajani et al., 2017): ``mean_i (|grad_x D(x_i)| - target)^2`` at
    ``x_i = e_i real_i + (1 - e_i) fake_i``, ``e_i ~ U[0, 1)`` drawn from ``key`` (unweighted; usually x10).
    ``eps`` inside the square root keeps the gradient finite at a zero input gradient."""
    e = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = e * real + (1 - e) * fake
    norm = jnp.sqrt(_input_grad_sq_norm(d_fn, x_hat) + eps)
    return jnp.mean(jnp.square(norm - target))


def r1(d_fn, real, fake, key):
    """:func:`r1_penalty` in the step's penalty form (``fake`` and ``key`` unused)."""
    return r1_penalty(d_fn, real)


PENALTIES = {"r1": r1, "wgan-gp": gradient_penalty}


def get_penalty(penalty):
    """``None``, a callable ``(d_fn, real, fake, key) -> scalar``, or a name of :data:`PENALTIES`."""
    if penalty is None or callable(penalty):
        return penalty
    if penalty not in PENALTIES:
        raise ValueError(f"unknown GAN penalty {penalty!r}: expected None, a callable or one of {sorted(PENALTIES)}")
    return PENALTIES[penalty]
