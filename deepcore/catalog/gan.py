"""Cases for the GAN models (:mod:`deepcore.models.gan`) and functions (:mod:`deepcore.gan`)."""
import jax
import jax.numpy as jnp

from deepcore import layers as L
from deepcore.catalog.case import Case, FunctionCase
from deepcore.gan import d_loss, g_loss, gradient_penalty, r1_penalty
from deepcore.layers import PhaseConvTranspose
from deepcore.models.gan import dcgan_discriminator, dcgan_generator

LAYER_CASES = [
    Case("phase_conv_transpose", lambda: PhaseConvTranspose(3, 4, strides=2), (2, 3, 4, 2)),
]

MODEL_CASES = [
    Case("dcgan_generator", lambda: dcgan_generator(4, channels=(6, 3), base=2, out_channels=1), (3, 4),
         stateful=True, smooth=False, batch_axis=None),
    Case("dcgan_discriminator", lambda: dcgan_discriminator((3, 4)), (2, 8, 8, 1), smooth=False),
    # train mode runs the power iteration under stop_gradient (the usual spectral-norm convention), so its
    # gradient is by design not the derivative of the train-mode output: check the eval-mode function only
    Case("dcgan_discriminator_sn", lambda: dcgan_discriminator((3, 4), spectral_norm=True), (2, 8, 8, 1),
         stateful=True, smooth=False, tags=("gradcheck=eval", "gradcheck=first-order")),
]


def _critic(key):
    d = L.serial(L.Conv2D(3, 3, strides=2), L.Tanh, L.Lambda(lambda x: x.reshape(x.shape[:-3] + (-1,))), L.Dense(1))
    _, params, _ = d.init(key, jax.ShapeDtypeStruct((3, 4, 4, 1), jnp.float32))
    return lambda p: (lambda x: d.apply(p, {}, x)[0][..., 0]), params


def _wgan_gp(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    critic, params = _critic(k1)
    real, fake = jax.random.normal(k2, (3, 4, 4, 1)), jax.random.normal(k3, (3, 4, 4, 1))
    return (lambda p, r, f: gradient_penalty(critic(p), r, f, k4)), (params, real, fake)


def _r1(key):
    k1, k2 = jax.random.split(key)
    critic, params = _critic(k1)
    return (lambda p, r: r1_penalty(critic(p), r)), (params, jax.random.normal(k2, (3, 4, 4, 1)))


def _loss(name):
    def make(key):
        k1, k2 = jax.random.split(key)
        r, f = jax.random.normal(k1, (5,)) * 2, jax.random.normal(k2, (5,)) * 2
        return (lambda r, f: d_loss(name, r, f) + g_loss(name, f)), (r, f)
    return make


FUNCTION_CASES = [
    FunctionCase("wgan_gradient_penalty", _wgan_gp, argnums=(0, 1, 2), argnames=("params", "real", "fake")),
    FunctionCase("r1_penalty", _r1, argnums=(0, 1), argnames=("params", "real")),
    FunctionCase("gan_loss_nonsaturating", _loss("nonsaturating"), argnums=(0, 1), argnames=("real", "fake")),
    FunctionCase("gan_loss_hinge", _loss("hinge"), argnums=(0, 1), argnames=("real", "fake"), smooth=False),
    FunctionCase("gan_loss_wasserstein", _loss("wasserstein"), argnums=(0, 1), argnames=("real", "fake")),
]
