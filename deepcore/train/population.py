"""Population training: one step trains N models (a stacked state with a leading member axis).

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

Two layouts. Stacked (what :func:`init_population` returns; checkpoints, ``fit`` and ``vmap`` read it) or apart,
a list of N member states (:func:`unstack_members`, back with :func:`stack_members`): given a list, every form
runs the members one after another with the single-member program and returns a list, so a step costs exactly
its members' separate steps (no cut and stack; the layout for CPU sweeps in a loop of your own)::

    members = unstack_members(states)
    for batch in batches:
        members, metrics = step(members, batch)                # metrics["loss"]: (8,)
    states = stack_members(members)

How stacked members run (``members=``): ``"sequential"`` runs them one after another as N dispatches of one compiled
single-member program (the state cut into members and stacked again by two small programs), so a step costs what the
members' separate steps cost plus the cut and the stack (measured 1.04-1.10x for a small CNN on a 2-core CPU, the
list layout 0.98-1.01x), and each member matched its separate run bit for bit in the tests (a CNN with Adam, an
MLP with SGD); it must be called from Python: inside an enclosing ``jax.jit``/``vmap`` it is traced as ``"unroll"``.
``"vmap"`` batches them into wide operations (fast on GPU/TPU); ``"unroll"`` puts one copy of the single-model
program per member into one compiled program; ``"map"`` runs them in a ``lax.map`` loop (slow on XLA:CPU).
``"auto"`` (default): on a CPU ``"sequential"`` for models with convolutions (where vmapped convolutions become slow
grouped ones and unrolled copies measured 1.1-1.9x the sequential cost), ``"unroll"`` for others (up to 8 members;
measured below the sequential cost) and when traced; ``"vmap"`` on GPU/TPU. Costs: BUILD_NOTES.md, issue 19
(``python bench/population_cpu.py``).

Hyperparameters given to :func:`init_population` or :func:`set_hyperparams` are copied, so the donating step
never deletes the caller's arrays.
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


def member(states, i: int) -> TrainState:
    """Member ``i`` of a population (stacked, or a list of members) as an ordinary :class:`TrainState`."""
    return states[i] if isinstance(states, (list, tuple)) else jax.tree.map(lambda a: a[i], states)


_unstack = jax.jit(lambda tree: [jax.tree.map(lambda a: a[i], tree)
                                 for i in range(jax.tree.leaves(tree)[0].shape[0])])
_stack = jax.jit(lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees))


def unstack_members(states: TrainState) -> list:
    """A stacked population (leading member axis N) as a list of its N member states (one small program).

    The list is the layout in which a population step costs exactly its members' separate steps on a CPU: the
    step runs each member with the single-member program and returns a list again (no cut and stack per step).
    Checkpoints, ``fit`` and the one-program forms want the stacked layout: :func:`stack_members`."""
    return _unstack(states)


def stack_members(members: Sequence) -> TrainState:
    """The inverse of :func:`unstack_members`: a list of N member states -> one state with a leading member axis."""
    return _stack(list(members))


MEMBERS = ("auto", "sequential", "vmap", "map", "unroll")


UNROLL_MAX = 8   # "auto" unrolls at most this many members on a CPU (compile time grows with the copies)


def members_form(members: str = "auto", backend: Optional[str] = None, n: Optional[int] = None, *,
                 traced: bool = False, convolutions: Optional[bool] = None) -> str:
    """``"sequential"``, ``"vmap"``, ``"unroll"`` or ``"map"``: how a population's ``n`` members run.

    ``"sequential"``: the members one after another, N dispatches of one compiled single-member program
    (N separate runs' cost plus cutting and stacking the state). ``"vmap"`` batches the members into wide operations
    (batched matmuls; a convolution whose input and kernel both carry the member axis becomes one grouped
    convolution): the fast form on GPU and TPU. ``"unroll"`` compiles one copy of the single-model step per
    member into one program. ``"map"``: a ``lax.map`` loop over the members. ``"auto"`` on ``cpu``:
    ``"sequential"`` when the call is not ``traced`` (inside an enclosing jit) and the member program has
    ``convolutions`` (``None``: unknown, taken as yes), else ``"unroll"`` when ``n <= UNROLL_MAX`` (or ``n``
    unknown), else ``"vmap"``; ``"vmap"`` elsewhere (BUILD_NOTES, issue 19).
    """
    if members not in MEMBERS:
        raise ValueError(f"population: members: expected one of {MEMBERS}, got {members!r}")
    if members != "auto":
        return members
    if (backend or jax.default_backend()) != "cpu":
        return "vmap"
    if not traced and convolutions is not False:
        return "sequential"
    return "unroll" if n is None or n <= UNROLL_MAX else "vmap"


def _over_members(fn: Callable, shared_batch: bool, form: str) -> Callable:
    """``fn(state, batch)`` over a stacked population in one program: vmapped, ``lax.map``-ped, or unrolled (one
    copy of the single-model program per member, results stacked)."""
    def over(states, batch):
        n = jax.tree.leaves(states)[0].shape[0]
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


def _primitives(jaxpr):
    """Names of every primitive in ``jaxpr`` and the jaxprs nested in its equations (pjit, scan, cond, ...)."""
    for eqn in jaxpr.eqns:
        yield eqn.primitive.name
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _primitives(sub)


class _Members:
    """A population ``step(states, batch)`` whose form is chosen per call (``members="auto"`` or
    ``"sequential"``). The sequential form cuts the stacked state into its members (one small program), runs the
    single-member program ``one(state, batch)`` on each (the program a separate run compiles, with its state
    donated, so each member is updated in place), then stacks the results (one small program): N members cost N
    dispatches of one program plus two copies of the population's state per step; nothing is compiled per member."""

    def __init__(self, fn, *, update, shared_batch, donate, compiler_options, members):
        self.fn, self.update, self.shared, self.donate, self.members = fn, update, shared_batch, donate, members
        self.options, self._stacked, self._plans = compiler_options, {}, {}
        self.one = compile_fn(fn, donate_argnums=(0,) if update else (), compiler_options=compiler_options)
        # members kept apart are the caller's own states: donated only when the step donates
        self.one_apart = self.one if donate or not update else compile_fn(fn, compiler_options=compiler_options)

    def _plan(self, states, batch, n):
        """The form for this signature, from one trace of the single-member step (does it convolve?)."""
        leaves = jax.tree.leaves((states, batch))
        key = (jax.tree.structure((states, batch)), tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in leaves))
        if key not in self._plans:
            one = lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype)   # noqa: E731
            closed = jax.make_jaxpr(self.fn)(jax.tree.map(one, states),
                                             batch if self.shared else jax.tree.map(one, batch))
            conv = "conv_general_dilated" in set(_primitives(closed.jaxpr))
            self._plans[key] = members_form(self.members, n=n, convolutions=conv)
        return self._plans[key]

    def _in_one_program(self, form):
        if form not in self._stacked:
            self._stacked[form] = compile_fn(_over_members(self.fn, self.shared, form),
                                             donate_argnums=(0,) if self.update and self.donate else (),
                                             compiler_options=self.options)
        return self._stacked[form]

    def _traced_form(self, n):
        return "unroll" if self.members == "sequential" else members_form(self.members, n=n, traced=True)

    def lower(self, states, batch):
        """The population as one program (the form a traced call uses): same FLOPs, for ``mfu.step_flops``."""
        return self._in_one_program(self._traced_form(jax.tree.leaves(states)[0].shape[0])).lower(states, batch)

    def _apart(self, states, batch):
        """Members kept apart (a list): each runs the single-member program (its state donated if ``donate``), the
        states come back as a list and the metrics stacked; traced, the single-member function is applied to each."""
        traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((states[0], batch)))
        batches = [batch] * len(states) if self.shared else (batch if isinstance(batch, (list, tuple))
                                                             else _unstack(batch))
        outs = [(self.fn if traced else self.one_apart)(s, b) for s, b in zip(states, batches)]
        if not self.update:
            return _stack(outs)
        return [o[0] for o in outs], _stack([o[1] for o in outs])

    def __call__(self, states, batch):
        if isinstance(states, (list, tuple)):
            return self._apart(list(states), batch)
        n = jax.tree.leaves(states)[0].shape[0]
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((states, batch))):
            return self._in_one_program(self._traced_form(n))(states, batch)
        form = self._plan(states, batch, n) if self.members in ("auto", "sequential") else self.members
        if form != "sequential":
            return self._in_one_program(form)(states, batch)
        parts = _unstack(states)
        if self.update and self.donate:
            for a in jax.tree.leaves(states):   # donated, as in the one-program forms
                a.delete()
        batch = jax.device_put(batch)   # a host batch crosses to the device once, not N times
        outs = [self.one(p, b) for p, b in zip(parts, [batch] * n if self.shared else _unstack(batch))]
        return _stack(outs)


def _build(fn, *, update, shared_batch, donate, compiler_options, members):
    """The step for ``members`` (:class:`_Members`): a fixed one-program form always runs as that program;
    ``"sequential"`` and ``"auto"`` on a CPU (which depends on the model and on being traced) choose per call; a
    list of members (:func:`unstack_members`) runs member by member in every form."""
    form = members_form(members, n=0, traced=True)   # validates; "auto" off a CPU is "vmap"
    return _Members(fn, update=update, shared_batch=shared_batch, donate=donate, compiler_options=compiler_options,
                    members=form if members == "auto" and form == "vmap" else members)


def population_step(loss_fn: Callable, tx: optax.GradientTransformation, *, shared_batch: bool = True,
                    donate: bool = True, compiler_options: Optional[dict] = None, members: str = "auto",
                    **update_kwargs) -> Callable:
    """A compiled ``step(states, batch) -> (states, metrics)`` for a stacked population.

    ``states``: stacked (leading member axis), or a list of member states (:func:`unstack_members`): then the
    result is a list, each member run by the single-member program. ``shared_batch``: every member sees the same
    batch (else the batch has a leading member axis, or is a list of per-member batches).
    ``members``: ``"auto"``, ``"sequential"``, ``"unroll"``, ``"vmap"`` or ``"map"`` (:func:`members_form`);
    ``"sequential"`` (the CPU default for models with convolutions) is a Python function that dispatches one
    compiled single-member program per member: call it from Python, not inside your own ``jax.jit`` (there
    it is traced as ``"unroll"``). ``metrics`` carry a leading member axis in every form. ``update_kwargs`` as for
    ``make_update``. The caller's arrays are never donated: :func:`init_population` and
    :func:`set_hyperparams` copy the hyperparameters they are given.
    """
    return _build(make_update(loss_fn, tx, **update_kwargs), update=True, shared_batch=shared_batch, donate=donate,
                  compiler_options=compiler_options, members=members)


def population_eval(loss_fn: Callable, *, shared_batch: bool = True, members: str = "auto",
                    **eval_kwargs) -> Callable:
    """A compiled ``evaluate(states, batch) -> metrics`` with a leading member axis on every metric."""
    return _build(make_eval(loss_fn, **eval_kwargs), update=False, shared_batch=shared_batch, donate=False,
                  compiler_options=None, members=members)
