"""The :class:`Case` record: one layer or model configuration with an input to feed it."""
from dataclasses import dataclass, field
from typing import Callable, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.core import Layer


@dataclass(frozen=True)
class Case:
    """A layer (or model) to test: ``make()`` builds it, ``shape`` is the batched input shape.

    ``int_max > 0`` means integer inputs drawn from ``[0, int_max)`` (e.g. token ids); otherwise
    floats ~ N(0, 1). ``stochastic`` layers draw randomness in train mode and need a key there.
    ``smooth=False`` marks functions with kinks (ReLU, max-pool) where finite differences need care.
    ``batch_axis`` is the axis a single-example apply is vmapped over (None: not per-example, e.g. BatchNorm
    without an axis name). Tags: ``axis_name=NAME`` (train mode needs the named axis bound),
    ``gradcheck=eval`` (train-mode gradient is a deliberate surrogate; gradient-check eval mode only),
    ``gradcheck=first-order`` (exact gradient, surrogate Hessian by design; no second-order check).
    """

    name: str
    make: Callable[[], Layer]
    shape: Tuple[int, ...]
    int_max: int = 0
    stochastic: bool = False
    stateful: bool = False
    smooth: bool = True
    batch_axis: object = 0
    tags: Tuple[str, ...] = field(default_factory=tuple)

    def input(self, key, dtype=jnp.float32):
        """A deterministic input for this case (ints when ``int_max > 0``)."""
        if self.int_max:
            return jax.random.randint(key, self.shape, 0, self.int_max, dtype=jnp.int32)
        return jax.random.normal(key, self.shape, dtype)

    def spec(self, dtype=jnp.float32):
        return jax.ShapeDtypeStruct(self.shape, jnp.int32 if self.int_max else np.dtype(dtype))

    def axis_name(self):
        """The collective axis name a train-mode apply needs bound (tag ``axis_name=NAME``), or None."""
        for t in self.tags:
            if t.startswith("axis_name="):
                return t.split("=", 1)[1]
        return None


@dataclass(frozen=True)
class FunctionCase:
    """A function that is not a layer (a loss, a gradient penalty) to gradient-check.

    ``make(key) -> (fn, args)``: ``fn(*args)`` returns a float pytree (or ``(output, aux)`` when
    ``has_aux``); the derivative is checked with respect to ``args[i]`` for ``i`` in ``argnums``,
    named ``argnames`` in reports. Float arguments are converted to the check's dtype; integer ones
    (labels) are kept. Pass randomness as a fixed key argument.
    """

    name: str
    make: Callable
    argnums: Tuple[int, ...] = (0,)
    argnames: Tuple[str, ...] = ()
    has_aux: bool = False
    smooth: bool = True
    tags: Tuple[str, ...] = field(default_factory=tuple)
