"""GAN objectives on discriminator logits: non-saturating, hinge and Wasserstein.

A loss is a :class:`GANLoss`, a pair of callables ``d(real_logits, fake_logits)`` and ``g(fake_logits)``
(logits ``(B,)``; means over the batch, computed in at least float32). D minimises ``d``, G minimises ``g``.
The named ones are module values (``losses.hinge``); write your own as ``GANLoss(my_d, my_g)``.

* ``"nonsaturating"`` (Goodfellow et al., 2014): D ``softplus(-r) + softplus(f)`` (binary cross-entropy
  with logits, real = 1), G ``softplus(-f)``.
* ``"hinge"`` (Lim & Ye, 2017; Miyato et al., 2018): D ``relu(1 - r) + relu(1 + f)``, G ``-f``.
* ``"wasserstein"`` (Arjovsky et al., 2017): D ``f - r``, G ``-f`` (pair it with a gradient penalty).
"""
from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from deepcore.core import accum_dtype


class GANLoss(NamedTuple):
    """A GAN objective: ``d(real_logits, fake_logits) -> scalar`` (D's loss), ``g(fake_logits) -> scalar`` (G's)."""
    d: Callable
    g: Callable


def _f32(x):
    return jnp.asarray(x).astype(accum_dtype(jnp.asarray(x).dtype))


def nonsaturating_d(real, fake):
    return jnp.mean(jax.nn.softplus(-_f32(real))) + jnp.mean(jax.nn.softplus(_f32(fake)))


def nonsaturating_g(fake):
    return jnp.mean(jax.nn.softplus(-_f32(fake)))


def hinge_d(real, fake):
    return jnp.mean(jax.nn.relu(1.0 - _f32(real))) + jnp.mean(jax.nn.relu(1.0 + _f32(fake)))


def hinge_g(fake):
    return -jnp.mean(_f32(fake))


def wasserstein_d(real, fake):
    return jnp.mean(_f32(fake)) - jnp.mean(_f32(real))


def wasserstein_g(fake):
    return -jnp.mean(_f32(fake))


nonsaturating = GANLoss(nonsaturating_d, nonsaturating_g)
hinge = GANLoss(hinge_d, hinge_g)
wasserstein = GANLoss(wasserstein_d, wasserstein_g)
LOSSES = {"nonsaturating": nonsaturating, "hinge": hinge, "wasserstein": wasserstein}


def get_loss(loss: Union[GANLoss, str]) -> GANLoss:
    """``loss`` itself, or the named one of :data:`LOSSES` (a ValueError naming the choices otherwise)."""
    if isinstance(loss, GANLoss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}: expected a GANLoss or one of {sorted(LOSSES)}")
    return LOSSES[loss]


def d_loss(loss: Union[GANLoss, str], real_logits, fake_logits):
    """The discriminator's part of ``loss`` (a :class:`GANLoss` or a name) for logits ``(B,)``."""
    return get_loss(loss).d(real_logits, fake_logits)


def g_loss(loss: Union[GANLoss, str], fake_logits):
    """The generator's part of ``loss`` for the discriminator's logits ``(B,)`` on generated images."""
    return get_loss(loss).g(fake_logits)
