"""Population training: one compiled step trains N models at once (``jax.vmap`` over the state).

Members differ in seed and in hyperparameters. Hyperparameters live in the optimiser state when the
optimiser is wrapped with ``optax.inject_hyperparams``, so a per-member learning rate is just a
``(N,)`` array in the stacked state::

    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    states = init_population(lambda key: model.init(key, spec)[1:], tx, seeds=range(8),
                             learning_rate=jnp.logspace(-3, 0, 8))
    step = population_step(classifier_loss(model), tx)          # one batch shared by every member
    states, metrics = step(states, batch)                       # metrics["loss"]: (8,)

Each member's trajectory equals a separate run with its own seed and hyperparameters.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.train.state import TrainState, create_state
from deepcore.train.step import compile_fn, make_eval, make_update


def set_hyperparams(state: TrainState, **values) -> TrainState:
    """Replace ``optax.inject_hyperparams`` values (e.g. ``learning_rate=jnp.array([...])``) in ``state.opt_state``."""
    opt_state = state.opt_state
    for name, value in values.items():
        found = optax.tree_utils.tree_get_all_with_path(opt_state, name)
        if not found:
            raise KeyError(f"no hyperparameter {name!r} in the optimiser state; wrap the optimiser with "
                           f"optax.inject_hyperparams")
        old = found[0][1]
        # a copy: the step donates the state, which must not delete the caller's array
        new = jnp.array(value, old.dtype, copy=True)
        if new.size != old.size:
            raise ValueError(f"set_hyperparams: {name}: expected {old.size} value(s) (shape {tuple(old.shape)}), "
                             f"got shape {tuple(new.shape)}")
        opt_state = optax.tree_utils.tree_set(opt_state, **{name: new.reshape(old.shape)})
    return state.replace(opt_state=opt_state)


def init_population(init_fn: Callable, tx: optax.GradientTransformation, seeds: Sequence[int], *,
                    ema: bool = False, **hyperparams) -> TrainState:
    """A stacked :class:`TrainState` with a leading member axis of size ``len(seeds)``.

    ``init_fn(key) -> (params, model_state)``; member ``i`` is built exactly as
    ``init_state``-style single runs are: ``init_key, train_key = split(PRNGKey(seeds[i]))``.
    ``hyperparams``: per-member values (length N) for ``inject_hyperparams`` entries (copied: the caller's
    arrays are never donated). An empty ``seeds`` or a hyperparameter of another length raises ``ValueError``.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("init_population: seeds: expected at least one seed, got 0")
    for name, value in hyperparams.items():
        if np.shape(value) != (len(seeds),):
            raise ValueError(f"init_population: {name}: expected {len(seeds)} values (one per seed), got shape "
                             f"{np.shape(value)}")
    def one(seed):
        init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
        params, model_state = init_fn(init_key)
        return create_state(params, model_state, tx, train_key, ema=ema)

    states = jax.vmap(one)(jnp.asarray(seeds, jnp.uint32))
    return set_hyperparams(states, **hyperparams) if hyperparams else states


def member(states: TrainState, i: int) -> TrainState:
    """Member ``i`` of a population as an ordinary :class:`TrainState`."""
    return jax.tree.map(lambda a: a[i], states)


def population_step(loss_fn: Callable, tx: optax.GradientTransformation, *, shared_batch: bool = True,
                    donate: bool = True, compiler_options: Optional[dict] = None, **update_kwargs) -> Callable:
    """A compiled ``step(states, batch) -> (states, metrics)`` for a stacked population.

    ``shared_batch``: every member sees the same batch (else the batch has a leading member axis).
    ``update_kwargs`` as for ``make_update``.
    """
    update = jax.vmap(make_update(loss_fn, tx, **update_kwargs), in_axes=(0, None if shared_batch else 0))
    return compile_fn(update, donate_argnums=(0,) if donate else (), compiler_options=compiler_options)


def population_eval(loss_fn: Callable, *, shared_batch: bool = True, **eval_kwargs) -> Callable:
    """A compiled ``evaluate(states, batch) -> metrics`` with a leading member axis on every metric."""
    return compile_fn(jax.vmap(make_eval(loss_fn, **eval_kwargs), in_axes=(0, None if shared_batch else 0)))
