"""The train state: one pytree holding everything a run needs to continue.

``TrainState(step, params, model_state, opt_state, key, ema)``:

* ``step``: int32 scalar, the number of updates applied so far.
* ``params``: the parameter dict (float32 master weights under mixed precision).
* ``model_state``: non-trained state (batch-norm statistics, ...), ``{}`` for most models.
* ``opt_state``: the optax optimiser state.
* ``key``: a raw ``uint32[2]`` PRNG key; the key for update ``t`` is ``fold_in(key, t)``, so the
  randomness of a step depends only on the seed and the step number (exact resume).
* ``ema``: an exponential moving average of ``params``, or ``None`` when not kept.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax


class StateMethods:
    """``replace`` and ``step_key`` of a frozen-dataclass state with ``step`` and ``key`` fields (:class:`TrainState`,
    ``deepcore.gan.GANState``)."""

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def step_key(self) -> jax.Array:
        """The PRNG key of the update about to be applied (a function of seed and step only)."""
        return jax.random.fold_in(self.key, self.step)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState(StateMethods):
    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    key: jax.Array
    ema: Any = None


def create_state(params, model_state, tx: optax.GradientTransformation, key, *, ema: bool = False) -> TrainState:
    """A fresh :class:`TrainState` at step 0. ``key`` is an int seed or a PRNG key; ``ema`` keeps an EMA."""
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=tx.init(params), key=jnp.asarray(key, jnp.uint32),
                      ema=jax.tree.map(jnp.array, params) if ema else None)


def init_state(model, spec, tx: optax.GradientTransformation, seed: int = 0, *, ema: bool = False) -> TrainState:
    """Initialise a deepcore ``model`` (a ``Layer``) for input ``spec`` and wrap it in a :class:`TrainState`.

    The init key and the training key are both derived from ``seed`` (different streams).
    """
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    _, params, model_state = model.init(init_key, spec)
    return create_state(params, model_state, tx, train_key, ema=ema)
