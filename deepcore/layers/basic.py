"""Parameter-free layers: Identity, Flatten (and its function :func:`flatten`), Reshape, Lambda (any pure function)
and activations."""
import math
from functools import partial

from deepcore import activations as A
from deepcore.core import Layer, ShapeError, layer, simple_init


def _stateless(name, fn) -> Layer:
    def apply(params, state, x, *, key=None, train=False):
        return fn(x), state

    return layer(name, simple_init(lambda key, spec: ({}, {}), apply), apply)


def Lambda(fn, name: str = "lambda") -> Layer:
    """A layer from a pure function ``fn(x) -> y`` with no parameters."""
    return _stateless(name, fn)


Identity = _stateless("identity", lambda x: x)


def flatten(x, start_dim: int = 1):
    """Merge the dims of ``x`` from ``start_dim`` on into one: ``(B, d1, d2, ...) -> (B, d1*d2*...)``.

    A negative ``start_dim`` counts from the end: ``flatten(x, -3)`` merges the last three dims of any
    ``(..., H, W, C)`` (one example's features, however many batch dims lead).
    """
    keep = start_dim if start_dim >= 0 else x.ndim + start_dim
    if keep < 0 or x.ndim < start_dim:
        need = start_dim if start_dim >= 0 else -start_dim
        raise ShapeError(f"expected at least {need} dims to flatten from start_dim={start_dim}, got {tuple(x.shape)}")
    return x.reshape(x.shape[:keep] + (math.prod(x.shape[keep:]),))


def Flatten(start_dim: int = 1) -> Layer:
    """The layer of :func:`flatten`: ``(B, d1, d2, ...) -> (B, d1*d2*...)`` keeps the first ``start_dim`` dims
    (0 for one example); ``Flatten(-3)`` merges the last three dims, ``(..., H, W, C) -> (..., H*W*C)``."""
    return _stateless("flatten", partial(flatten, start_dim=start_dim))


def Reshape(shape, start_dim: int = 1) -> Layer:
    """Reshape the dims from ``start_dim`` on to ``shape`` (one entry may be -1)."""

    def fn(x):
        try:
            return x.reshape(x.shape[:start_dim] + tuple(shape))
        except TypeError as e:
            raise ShapeError(f"cannot reshape {tuple(x.shape)} to (..., {tuple(shape)}): {e}") from None

    return _stateless("reshape", fn)


def Activation(fn, name: str = None) -> Layer:
    """Any elementwise function as a layer, named after it."""
    return _stateless(name or getattr(fn, "__name__", "activation"), fn)


Relu = Activation(A.relu, "relu")
Sigmoid = Activation(A.sigmoid, "sigmoid")
Tanh = Activation(A.tanh, "tanh")
Gelu = Activation(A.gelu, "gelu")
GeluTanh = Activation(A.gelu_tanh, "gelu")
Silu = Swish = Activation(A.silu, "silu")
Softplus = Activation(A.softplus, "softplus")
Elu = Activation(A.elu, "elu")
Softmax = Activation(A.softmax, "softmax")
LogSoftmax = Activation(A.log_softmax, "log_softmax")


def LeakyRelu(negative_slope: float = 0.01) -> Layer:
    """Layer: ``x`` where positive, ``negative_slope * x`` elsewhere (any shape)."""
    return Activation(partial(A.leaky_relu, negative_slope=negative_slope), "leaky_relu")
