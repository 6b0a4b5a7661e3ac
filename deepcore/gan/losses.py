"""GAN objectives on discriminator logits: non-saturating, hinge and Wasserstein.

Each pair is ``(d_loss(real_logits, fake_logits), g_loss(fake_logits))``, means over the batch, computed
in at least float32. D minimises its loss, G minimises its own.

* ``"nonsaturating"`` (Goodfellow et al., 2014): D ``softplus(-r) + softplus(f)`` (binary cross-entropy
  with logits, real = 1), G ``softplus(-f)``.
* ``"hinge"`` (Lim & Ye, 2017; Miyato et al., 2018): D ``relu(1 - r) + relu(1 + f)``, G ``-f``.
* ``"wasserstein"`` (Arjovsky et al., 2017): D ``f - r``, G ``-f`` (pair it with a gradient penalty).
"""
import jax
import jax.numpy as jnp


def _f32(x):
    return jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))


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


LOSSES = {"nonsaturating": (nonsaturating_d, nonsaturating_g), "hinge": (hinge_d, hinge_g),
          "wasserstein": (wasserstein_d, wasserstein_g)}


def _pair(name):
    if name not in LOSSES:
        raise ValueError(f"unknown GAN loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]


def d_loss(name: str, real_logits, fake_logits):
    """The discriminator's loss ``name`` (see module docstring) for logits ``(B,)`` on real and fake images."""
    return _pair(name)[0](real_logits, fake_logits)


def g_loss(name: str, fake_logits):
    """The generator's loss ``name`` for the discriminator's logits ``(B,)`` on generated images."""
    return _pair(name)[1](fake_logits)
