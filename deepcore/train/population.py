"""Population training: one compiled step trains N models at once (``jax.vmap`` over the state).

Members differ in seed and in hyperparameters. Hyperparameters live in the optimiser state when the
optimiser is wrapped with ``optax.inject_hyperparams``, so a per-member learning rate is just a
``(N,)`` array in the stacked state::

    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    states = init_population(lambda key: model.init(key, spec)[1:], tx, seeds=range(8),
                             learning_rate=jnp.logspace(-3, 0, 8))
    step = population_step(classifier_loss(model), tx)          # one batch shared by every member
    states, metrics = step(states, batch)                       # metrics["loss"]: (8,)

What "equals a separate run" means: member ``i`` is initialised bit-identically to ``init_state`` with seed
``seeds[i]`` and then performs the same arithmetic as a separate run with its seed and hyperparameters, up to
float32 rounding: the compiled population program may sum in another order (a vmapped matmul is one batched
dot; fusions differ), a few ulps per step that training carries forward. Measured on CPU after 30 steps
(``tests/train/test_population.py``): at most 2.2e-7 of the largest parameter vmapped, bit-identical with
``members="unroll"`` or ``"map"`` for an MLP with SGD; about 1e-7 for a small CNN with Adam. Over long runs
chaotic training can grow such differences, as changing the thread count does; use float64 for bitwise studies.

How the members run (``members=``): ``"vmap"`` batches them into wide operations (fast on GPU/TPU);
``"unroll"`` puts one copy of the single-model program per member into the one compiled program (on a CPU,
where vmapped convolutions become grouped convolutions that XLA:CPU runs slowly); ``"map"`` runs them in a
``lax.map`` loop (slow on XLA:CPU: measured 23x the members' sequential cost for a small CNN); ``"auto"``
(default): ``"unroll"`` on a CPU for populations of up to 8 members, else ``"vmap"``. Measured costs against
the members' steps run one after another: BUILD_NOTES.md, issue 19 (``python bench/population_cpu.py``). Hyperparameters given to :func:`init_population` or :func:`set_hyperparams` are copied, so
the donating step never deletes the caller's arrays.
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


MEMBERS = ("auto", "vmap", "map", "unroll")


UNROLL_MAX = 8   # "auto" unrolls at most this many members on a CPU (compile time grows with the copies)


def members_form(members: str = "auto", backend: Optional[str] = None, n: Optional[int] = None) -> str:
    """``"vmap"``, ``"unroll"`` or ``"map"``: how a population's ``n`` members run in its compiled step.

    ``"vmap"`` batches the members into wide operations (batched matmuls; a convolution whose input and kernel
    both carry the member axis becomes one grouped convolution): the fast form on GPU and TPU. ``"unroll"``
    compiles one copy of the single-model step per member into the program (XLA:CPU runs grouped convolutions
    and their gradients far slower than plain ones). ``"map"``: a ``lax.map`` loop over the members. ``"auto"``:
    ``"unroll"`` on ``cpu`` when ``n <= UNROLL_MAX`` (or ``n`` unknown), else ``"vmap"`` (BUILD_NOTES, issue 19).
    """
    if members not in MEMBERS:
        raise ValueError(f"population: members: expected one of {MEMBERS}, got {members!r}")
    if members != "auto":
        return members
    cpu = (backend or jax.default_backend()) == "cpu"
    return "unroll" if cpu and (n is None or n <= UNROLL_MAX) else "vmap"


def _over_members(fn: Callable, shared_batch: bool, members: str) -> Callable:
    """``fn(state, batch)`` over a stacked population: vmapped, ``lax.map``-ped, or unrolled (one copy of the
    single-model program per member, results stacked)."""
    members_form(members)   # an unknown form fails when the step is built

    def over(states, batch):
        n = jax.tree.leaves(states)[0].shape[0]
        form = members_form(members, n=n)
        if form == "vmap":
            return jax.vmap(fn, in_axes=(0, None if shared_batch else 0))(states, batch)
        if form == "map":
            if shared_batch:
                return jax.lax.map(lambda s: fn(s, batch), states)
            return jax.lax.map(lambda sb: fn(*sb), (states, batch))
        pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)   # noqa: E731
        outs = [fn(pick(states, i), batch if shared_batch else pick(batch, i)) for i in range(n)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return over


def population_step(loss_fn: Callable, tx: optax.GradientTransformation, *, shared_batch: bool = True,
                    donate: bool = True, compiler_options: Optional[dict] = None, members: str = "auto",
                    **update_kwargs) -> Callable:
    """A compiled ``step(states, batch) -> (states, metrics)`` for a stacked population.

    ``shared_batch``: every member sees the same batch (else the batch has a leading member axis).
    ``members``: ``"vmap"``, ``"map"`` or ``"auto"`` (:func:`members_form`). ``update_kwargs`` as for
    ``make_update``. The caller's arrays are never donated: :func:`init_population` and
    :func:`set_hyperparams` copy the hyperparameters they are given.
    """
    update = _over_members(make_update(loss_fn, tx, **update_kwargs), shared_batch, members)
    return compile_fn(update, donate_argnums=(0,) if donate else (), compiler_options=compiler_options)


def population_eval(loss_fn: Callable, *, shared_batch: bool = True, members: str = "auto",
                    **eval_kwargs) -> Callable:
    """A compiled ``evaluate(states, batch) -> metrics`` with a leading member axis on every metric."""
    return compile_fn(_over_members(make_eval(loss_fn, **eval_kwargs), shared_batch, members))
