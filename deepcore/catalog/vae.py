"""Cases for the VAE's layer and networks (:mod:`deepcore.models.vae`) and functions (:mod:`deepcore.vae`)."""
import jax
import jax.numpy as jnp

from deepcore import layers as L
from deepcore.catalog.case import Case, FunctionCase
from deepcore.models.vae import VAE, conv_decoder, conv_encoder
from deepcore.vae import (GaussianSample, discretized_logistic_log_prob, elbo_terms, gaussian_kl, gaussian_log_prob,
                          reparameterize)


def _tiny_encoder():
    return conv_encoder(3, channels=(2, 3), hidden=5)


def _tiny_decoder():
    return conv_decoder(channels=(3, 2), base=2, hidden=5)


LAYER_CASES = [
    Case("gaussian_sample", GaussianSample, (3, 4), stochastic=True),
]

MODEL_CASES = [
    Case("vae_conv_encoder", _tiny_encoder, (2, 8, 8, 1)),
    Case("vae_conv_decoder", _tiny_decoder, (2, 3)),
    Case("vae", lambda: VAE(_tiny_encoder(), _tiny_decoder()), (2, 8, 8, 1), stochastic=True),
]


def _logistic(key):
    """Levels 0, 255 (the tails) and inner levels under logistics of several scales."""
    k1, k2 = jax.random.split(key)
    x = jnp.array([0, 1, 77, 128, 254, 255])
    loc, log_scale = jax.random.uniform(k1, (6,)), jax.random.uniform(k2, (6,), minval=-4.0, maxval=-1.0)
    return (lambda loc, log_scale: jnp.sum(discretized_logistic_log_prob(x, loc, log_scale))), (loc, log_scale)


def _kl_and_sample(key):
    """The KL term and a reparameterised draw's prior log-density, at a fixed noise key."""
    k1, k2, k3 = jax.random.split(key, 3)
    mean, log_var = jax.random.normal(k1, (2, 3)), 0.5 * jax.random.normal(k2, (2, 3))

    def f(mean, log_var):
        z = reparameterize(k3, mean, log_var)
        return jnp.sum(gaussian_kl(mean, log_var) + gaussian_log_prob(z, 0.0, 0.0))

    return f, (mean, log_var)


def _elbo(key):
    """The one-sample negative ELBO of three 2x2 integer images with respect to a dense encoder's and decoder's
    parameters (the conv networks have their own cases above)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    enc = L.serial(L.Flatten(-3), L.Dense(4))
    dec = L.serial(L.Dense(8), L.Tanh, L.Lambda(lambda v: v.reshape(v.shape[:-1] + (2, 2, 2))))
    _, pe, _ = enc.init(k1, jax.ShapeDtypeStruct((3, 2, 2, 1), jnp.float32))
    _, pd, _ = dec.init(k2, jax.ShapeDtypeStruct((3, 2), jnp.float32))
    x = jax.random.randint(k3, (3, 2, 2, 1), 0, 256)

    def f(pe, pd):
        t = elbo_terms(lambda v: enc.apply(pe, {}, v)[0], lambda z: dec.apply(pd, {}, z)[0], x, k4)
        return jnp.sum(t["rec"] + t["kl"])

    return f, (pe, pd)


FUNCTION_CASES = [
    FunctionCase("discretized_logistic_log_prob", _logistic, argnums=(0, 1), argnames=("loc", "log_scale")),
    FunctionCase("gaussian_kl_and_sample", _kl_and_sample, argnums=(0, 1), argnames=("mean", "log_var")),
    FunctionCase("vae_neg_elbo", _elbo, argnums=(0, 1), argnames=("encoder", "decoder")),
]
