"""Activation functions, ``f(x) -> y`` elementwise (softmax and log_softmax over ``axis``).

The same functions are layers in :mod:`deepcore.layers.basic` (``Relu``, ``Gelu``, ...).
"""
import jax
import jax.numpy as jnp

relu = jax.nn.relu
sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
softplus = jax.nn.softplus
silu = swish = jax.nn.silu
elu = jax.nn.elu                  # elu(x, alpha=1.0)
softmax = jax.nn.softmax          # softmax(x, axis=-1)
log_softmax = jax.nn.log_softmax  # log_softmax(x, axis=-1)


def leaky_relu(x, negative_slope: float = 0.01):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return jax.nn.leaky_relu(x, negative_slope)


def gelu(x):
    """Exact GELU, ``x * Phi(x)`` (as in PyTorch's default)."""
    return jax.nn.gelu(x, approximate=False)


def gelu_tanh(x):
    """GELU with the tanh approximation (GPT-2, BERT)."""
    return jax.nn.gelu(x, approximate=True)


__all__ = ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "swish", "sigmoid", "tanh",
           "softplus", "softmax", "log_softmax"]
