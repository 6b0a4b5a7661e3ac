"""Cases for functions that are not layers: losses and a WGAN-GP gradient penalty (second order)."""
import jax
import jax.numpy as jnp
import optax

from deepcore import layers as L
from deepcore.catalog.case import FunctionCase


def _gradient_penalty(key):
    """``mean((|grad_x D(x_hat)| - 1)^2)`` at ``x_hat = e real + (1 - e) fake`` for a small tanh critic."""
    critic = L.serial(L.Dense(6), L.Tanh, L.Dense(1))
    k1, k2, k3, k4 = jax.random.split(key, 4)
    _, params, state = critic.init(k1, jax.ShapeDtypeStruct((4, 3), jnp.float32))
    real, fake = jax.random.normal(k2, (4, 3)), jax.random.normal(k3, (4, 3))
    mix = jax.random.uniform(k4, (4, 1))

    def penalty(params, real, fake):
        x_hat = mix * real + (1 - mix) * fake
        score = lambda x: critic.apply(params, state, x)[0].sum()  # noqa: E731
        g = jax.grad(score)(x_hat)
        return jnp.mean((jnp.sqrt(jnp.sum(g ** 2, axis=-1) + 1e-12) - 1.0) ** 2)

    return penalty, (params, real, fake)


def _cross_entropy(key):
    """optax softmax cross-entropy with integer labels (labels are not perturbed)."""
    k1, k2 = jax.random.split(key)
    logits, labels = jax.random.normal(k1, (4, 5)), jax.random.randint(k2, (4,), 0, 5)

    def loss(logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    return loss, (logits, labels)


CASES = [
    FunctionCase("gradient_penalty", _gradient_penalty, argnums=(0, 1, 2), argnames=("params", "real", "fake")),
    FunctionCase("softmax_cross_entropy", _cross_entropy, argnums=(0, 1), argnames=("logits", "labels")),
]
