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
    without an axis name).
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
