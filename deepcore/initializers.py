"""Weight initialisers, as in ``jax.nn.initializers``: same names, same signatures, same kinds.

Two kinds, exactly as in JAX and Flax:

* **initialisers** ``init(key, shape, dtype=float32) -> array``: :func:`zeros`, :func:`ones`.
  Pass them as they are: ``Dense(8, b_init=zeros)``.
* **factories** that return an initialiser: :func:`constant`, :func:`normal`, :func:`uniform`,
  :func:`truncated_normal`, :func:`orthogonal`, :func:`variance_scaling`, :func:`glorot_uniform`,
  :func:`glorot_normal`, :func:`he_uniform`, :func:`he_normal`, :func:`lecun_uniform`,
  :func:`lecun_normal` (and the aliases ``xavier_*`` = ``glorot_*``, ``kaiming_*`` = ``he_*``).
  Call them: ``Dense(8, w_init=he_normal())``, ``Embedding(V, D, w_init=normal(0.02))``.

The fan-based factories also accept being called as an initialiser, ``he_normal(key, shape, dtype)``
(their defaults), the form deepcore used before they were factories; prefer ``he_normal()``.
Fans follow the kernel layouts used by deepcore: Dense ``(in, out)``, Conv ``(*spatial, in/groups, out)``,
so the receptive field counts towards fan-in and fan-out exactly as in Glorot & Bengio (2010) and
He et al. (2015).
"""
import jax
import jax.nn.initializers as _ji
import jax.numpy as jnp
import numpy as np


def zeros(key, shape, dtype=jnp.float32):
    """Initialiser (not a factory): an array of zeros of ``shape`` and ``dtype``; ``key`` is unused."""
    return _ji.zeros(key, shape, dtype)


def ones(key, shape, dtype=jnp.float32):
    """Initialiser (not a factory): an array of ones of ``shape`` and ``dtype``; ``key`` is unused."""
    return _ji.ones(key, shape, dtype)


def constant(value, dtype=jnp.float32):
    """Factory: ``constant(0.1)`` returns an initialiser filling ``shape`` with ``value``."""
    return _ji.constant(value, dtype)


def normal(stddev=1e-2, dtype=jnp.float32):
    """Factory: ``normal(0.02)`` returns an initialiser drawing from N(0, stddev**2)."""
    return _ji.normal(stddev, dtype)


def uniform(scale=1e-2, dtype=jnp.float32):
    """Factory: ``uniform(0.1)`` returns an initialiser drawing uniformly from ``[0, scale)``."""
    return _ji.uniform(scale, dtype)


def truncated_normal(stddev=1e-2, dtype=jnp.float32, lower=-2.0, upper=2.0):
    """Factory: ``truncated_normal(0.02)`` returns an initialiser drawing from N(0, stddev**2) cut at
    ``[lower, upper]`` standard deviations."""
    return _ji.truncated_normal(stddev, dtype, lower, upper)


def orthogonal(scale=1.0, column_axis=-1, dtype=jnp.float32):
    """Factory: ``orthogonal()`` returns an initialiser of (semi-)orthogonal matrices times ``scale``
    (the last axis holds the columns; leading axes are flattened into rows)."""
    return _ji.orthogonal(scale, column_axis, dtype)


def variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(), dtype=jnp.float32):
    """Factory: ``variance_scaling(2.0, "fan_in", "truncated_normal")`` returns an initialiser with variance
    ``scale / fan`` (``mode``: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``; ``distribution``: ``"normal"``,
    ``"truncated_normal"``, ``"uniform"``), as ``jax.nn.initializers.variance_scaling``."""
    return _ji.variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)


def _is_key(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


def _fan_factory(name: str, scale: float, mode: str, distribution: str, what: str):
    """A jax-style fan-based factory that, called with a PRNG key first, acts as its default initialiser."""

    def factory(in_axis=-2, out_axis=-1, batch_axis=(), dtype=jnp.float32):
        if _is_key(in_axis):  # he_normal(key, shape[, dtype]): the pre-factory form
            key, shape = in_axis, out_axis
            dt = batch_axis if batch_axis != () else dtype
            return _ji.variance_scaling(scale, mode, distribution)(key, shape, dt)
        return _ji.variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"Factory: ``{name}()`` returns an initialiser {what} "
                       f"(``jax.nn.initializers.{name}``: variance_scaling({scale}, {mode!r}, {distribution!r})).\n\n"
                       f"``in_axis``/``out_axis``/``batch_axis`` pick the fan axes of the kernel. "
                       f"Called with a PRNG key first, ``{name}(key, shape, dtype)`` is that initialiser with the defaults.")
    return factory


glorot_uniform = xavier_uniform = _fan_factory("glorot_uniform", 1.0, "fan_avg", "uniform",
                                               "with variance 2 / (fan_in + fan_out), uniform")
glorot_normal = xavier_normal = _fan_factory("glorot_normal", 1.0, "fan_avg", "truncated_normal",
                                             "with variance 2 / (fan_in + fan_out), truncated normal")
he_uniform = kaiming_uniform = _fan_factory("he_uniform", 2.0, "fan_in", "uniform",
                                            "with variance 2 / fan_in (for ReLU), uniform")
he_normal = kaiming_normal = _fan_factory("he_normal", 2.0, "fan_in", "truncated_normal",
                                          "with variance 2 / fan_in (for ReLU), truncated normal")
lecun_uniform = _fan_factory("lecun_uniform", 1.0, "fan_in", "uniform", "with variance 1 / fan_in, uniform")
lecun_normal = _fan_factory("lecun_normal", 1.0, "fan_in", "truncated_normal",
                            "with variance 1 / fan_in, truncated normal")

INITIALIZERS = ("zeros", "ones")
FACTORIES = ("constant", "normal", "uniform", "truncated_normal", "orthogonal", "variance_scaling",
             "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
             "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal")

__all__ = list(INITIALIZERS + FACTORIES)
