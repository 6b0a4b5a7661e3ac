"""Population training: one vmapped compiled step equals N separate runs."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore import layers as L
from deepcore.train import classifier_loss, eval_step, init_state, make_update
from deepcore.train import train_step
from deepcore.train.mfu import step_flops
from deepcore.train.population import (init_population, member, members_form, population_eval, population_step,
                                       set_hyperparams, stack_members, unstack_members)

LRS = [0.05, 0.1, 0.2, 0.4]
STEPS = 4
MODEL = C.model()
LOSS = classifier_loss(MODEL)


def init_fn(key):
    _, params, state = MODEL.init(key, C.spec())
    return params, state


def test_population_equals_separate_runs_per_seed_and_learning_rate():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    pop = init_population(init_fn, tx, seeds=range(len(LRS)), learning_rate=LRS)
    step = population_step(LOSS, tx)
    for t in range(STEPS):
        pop, metrics = step(pop, C.batch_at(t))
        assert metrics["loss"].shape == (len(LRS),)
    ev = population_eval(LOSS)(pop, C.batch_at(99))
    assert ev["loss"].shape == (len(LRS),)

    # separate runs with plain optax.sgd (lr an argument, so one compilation serves every run)
    run_step = jax.jit(lambda s, b, lr: make_update(LOSS, optax.sgd(lr))(s, b))
    for i, lr in enumerate(LRS):
        s = init_state(MODEL, C.spec(), optax.sgd(lr), seed=i)
        for t in range(STEPS):
            s, _ = run_step(s, C.batch_at(t), lr)
        got = member(pop, i)
        assert int(got.step) == STEPS
        assert np.max(np.abs(C.flat(got.params) - C.flat(s.params))) < 1e-6, i
    # members really differ (different seeds and learning rates)
    assert np.max(np.abs(C.flat(member(pop, 0).params) - C.flat(member(pop, 1).params))) > 1e-2


def test_per_member_batches_and_hyperparameter_errors():
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    pop = init_population(init_fn, tx, seeds=[7, 7], learning_rate=[1e-2, 1e-2])
    step = population_step(LOSS, tx, shared_batch=False)
    both = jax.tree.map(lambda a, b: np.stack([a, b]), C.batch_at(0), C.batch_at(1))
    pop, m = step(pop, both)
    # same seed and lr, different batches: different losses; same batch would give equal members
    assert float(m["loss"][0]) != float(m["loss"][1])
    pop = set_hyperparams(pop, learning_rate=jnp.array([0.5, 0.25]))
    np.testing.assert_allclose(pop.opt_state.hyperparams["learning_rate"], [0.5, 0.25])
    with pytest.raises(KeyError, match="momentum"):
        set_hyperparams(pop, momentum=jnp.zeros(2))


def test_population_refuses_no_seeds_and_mismatched_hyperparameters():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    with pytest.raises(ValueError, match=r"^init_population: seeds: expected at least one seed, got 0$"):
        init_population(init_fn, tx, seeds=[])
    with pytest.raises(ValueError, match=r"^init_population: learning_rate: expected 3 values \(one per seed\), "
                                         r"got shape \(2,\)$"):
        init_population(init_fn, tx, seeds=[0, 1, 2], learning_rate=[0.1, 0.2])
    pop = init_population(init_fn, tx, seeds=[0, 1])
    with pytest.raises(ValueError, match=r"^set_hyperparams: learning_rate: expected 2 value\(s\) \(shape \(2,\)\), "
                                         r"got shape \(3,\)$"):
        set_hyperparams(pop, learning_rate=[0.1, 0.2, 0.3])


def test_a_device_array_of_hyperparameters_survives_the_donating_step():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    lrs = jnp.array([0.1, 0.2], jnp.float32)              # the dtype of the state's entry: no conversion copy
    pop = init_population(init_fn, tx, seeds=[0, 1], learning_rate=lrs)
    pop = set_hyperparams(pop, learning_rate=lrs)
    pop, _ = population_step(LOSS, tx)(pop, C.batch_at(0))  # donates the stacked state
    assert not lrs.is_deleted()
    np.testing.assert_allclose(lrs, [0.1, 0.2])


@pytest.mark.parametrize("members", ["vmap", "unroll", "map", "sequential"])
def test_member_equals_a_separate_run_to_float32_rounding_after_30_steps(members):
    """The figure the population docs state: after 30 SGD steps of the test MLP, every member's parameters are
    within 1e-6 of the largest parameter of its separate run (measured: at most 2.2e-7 vmapped, 0 with "map"),
    i.e. a few float32 ulps: the same arithmetic, only summed in another order by the compiled program."""
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    pop = init_population(init_fn, tx, seeds=range(len(LRS)), learning_rate=LRS)
    step = population_step(LOSS, tx, members=members)
    for t in range(30):
        pop, _ = step(pop, C.batch_at(t))
    for i, lr in enumerate(LRS):
        tx_i = optax.inject_hyperparams(optax.sgd)(learning_rate=lr)
        s, run = init_state(MODEL, C.spec(), tx_i, seed=i), train_step(LOSS, tx_i)
        for t in range(30):
            s, _ = run(s, C.batch_at(t))
        want = C.flat(s.params)
        assert np.max(np.abs(C.flat(member(pop, i).params) - want)) <= 1e-6 * np.max(np.abs(want)), (members, i)


def test_members_forms_agree_with_per_member_batches_and_refuse_unknown_forms():
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    both = jax.tree.map(lambda a, b: np.stack([a, b]), C.batch_at(0), C.batch_at(1))
    out = {}
    for form in ("vmap", "unroll", "map", "sequential"):
        pop = init_population(init_fn, tx, seeds=[3, 4], learning_rate=[1e-2, 3e-2])
        pop, m = population_step(LOSS, tx, shared_batch=False, members=form)(pop, both)
        out[form] = (C.flat(pop.params), m["loss"], population_eval(LOSS, members=form)(pop, C.batch_at(2))["loss"])
    for form in ("unroll", "map", "sequential"):
        for a, b in zip(out["vmap"], out[form]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(out["unroll"], out["sequential"]):   # the same single-member arithmetic
        np.testing.assert_array_equal(a, b)
    assert members_form("auto", "cpu") == "sequential" and members_form("auto", "gpu") == "vmap"
    assert members_form("auto", "cpu", n=4, convolutions=False) == "unroll"
    assert members_form("auto", "cpu", n=9, convolutions=False) == "vmap"
    assert members_form("auto", "cpu", n=4, traced=True) == "unroll"
    with pytest.raises(ValueError, match=r"^population: members: expected one of \('auto', 'sequential', 'vmap', 'map', "
                                         r"'unroll'\), got 'loop'$"):
        population_step(LOSS, tx, members="loop")


CNN = L.serial(L.Conv2D(4, 3), L.Relu, L.MaxPool((2, 2)), L.Conv2D(8, 3), L.Relu, L.GlobalAvgPool(), L.Dense(10))
CNN_SPEC = jax.ShapeDtypeStruct((8, 8, 8, 1), jnp.float32)


def cnn_batch(t):
    rng = np.random.default_rng(50 + t)
    return {"x": rng.normal(size=(8, 8, 8, 1)).astype(np.float32), "y": rng.integers(0, 10, 8).astype(np.int32)}


@pytest.mark.parametrize("shared_batch", [True, False])
def test_sequential_members_are_bit_identical_to_separate_runs_of_a_cnn(shared_batch):
    """``members="sequential"`` (the CPU "auto" choice for a model with convolutions): N dispatches of one
    compiled single-member program; each member equals its own separately compiled run bit for bit, the state is
    updated in place (donated) with one compilation for all members, and the metrics carry the member axis."""
    loss, lrs = classifier_loss(CNN), [1e-3, 1e-2, 3e-2]
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    pop = init_population(lambda k: CNN.init(k, CNN_SPEC)[1:], tx, seeds=range(3), learning_rate=lrs)
    step, evaluate = population_step(loss, tx, shared_batch=shared_batch), population_eval(loss, shared_batch=shared_batch)
    batches = [cnn_batch(t) if shared_batch else jax.tree.map(lambda *m: np.stack(m), *[cnn_batch(3 * t + i) for i in range(3)])
               for t in range(3)]
    for b in batches:
        old, (pop, metrics) = pop, step(pop, b)
        assert jax.tree.leaves(old.params)[0].is_deleted()           # donated: written in place
    ev = evaluate(pop, batches[0])
    assert list(step._plans.values()) == ["sequential"] and len(step.one._cache) == 1
    assert metrics["loss"].shape == ev["loss"].shape == (3,)
    run, run_eval = train_step(loss, tx), eval_step(loss)   # one compilation serves the separate runs
    for i, lr in enumerate(lrs):
        s = set_hyperparams(init_state(CNN, CNN_SPEC, tx, seed=i), learning_rate=lr)
        pick = (lambda b: b) if shared_batch else (lambda b: jax.tree.map(lambda a: a[i], b))
        for b in batches:
            s, m = run(s, pick(b))
        np.testing.assert_array_equal(C.flat(member(pop, i).params), C.flat(s.params))
        np.testing.assert_array_equal(C.flat(member(pop, i).opt_state), C.flat(s.opt_state))
        assert float(metrics["loss"][i]) == float(m["loss"])
        assert float(ev["loss"][i]) == float(run_eval(s, pick(batches[0]))["loss"])


def test_sequential_keeps_the_callers_state_without_donation_and_traces_inside_a_jit():
    loss = classifier_loss(CNN)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    pop = init_population(lambda k: CNN.init(k, CNN_SPEC)[1:], tx, seeds=range(2), learning_rate=[0.1, 0.2])
    step = population_step(loss, tx, members="sequential", donate=False)
    new, m = step(pop, cnn_batch(0))
    assert not jax.tree.leaves(pop.params)[0].is_deleted()
    inside, m_jit = jax.jit(step)(pop, cnn_batch(0))   # traced: one program, the "unroll" form
    assert step_flops(step, pop, cnn_batch(0)) == step_flops(population_step(loss, tx, members="unroll"), pop,
                                                             cnn_batch(0)) > 0
    np.testing.assert_array_equal(C.flat(inside.params), C.flat(new.params))
    np.testing.assert_array_equal(m_jit["loss"], m["loss"])


@pytest.mark.parametrize("members", ["auto", "vmap", "unroll"])
def test_members_kept_apart_as_a_list_equal_the_stacked_sequential_run(members):
    """A list of member states (``unstack_members``) runs member by member in every form, comes back a list, and
    equals the stacked ``"sequential"`` run bit for bit (per-member batches given stacked or as a list; traced
    inside a jit too); ``stack_members`` restores the stacked layout."""
    loss, lrs = classifier_loss(CNN), [1e-3, 3e-2]
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    make = lambda: init_population(lambda k: CNN.init(k, CNN_SPEC)[1:], tx, seeds=range(2), learning_rate=lrs)  # noqa
    stacked_batch = jax.tree.map(lambda *m: np.stack(m), cnn_batch(0), cnn_batch(1))
    ref, ref_m = population_step(loss, tx, shared_batch=False, members="sequential")(make(), stacked_batch)
    step = population_step(loss, tx, shared_batch=False, members=members)
    apart, m = step(unstack_members(make()), stacked_batch)
    assert isinstance(apart, list) and len(apart) == 2 and m["loss"].shape == (2,)
    again, m2 = step(unstack_members(make()), [cnn_batch(0), cnn_batch(1)])
    traced, m3 = jax.jit(step)(unstack_members(make()), stacked_batch)
    for got in (stack_members(apart), stack_members(again), stack_members(traced)):
        np.testing.assert_array_equal(C.flat(got.params), C.flat(ref.params))
        np.testing.assert_array_equal(C.flat(got.opt_state), C.flat(ref.opt_state))
    for metrics in (m, m2, m3):
        np.testing.assert_array_equal(metrics["loss"], ref_m["loss"])
    np.testing.assert_array_equal(C.flat(member(apart, 1).params), C.flat(member(ref, 1).params))
    kept = unstack_members(make())
    population_step(loss, tx, shared_batch=False, members=members, donate=False)(kept, stacked_batch)
    assert not any(a.is_deleted() for a in jax.tree.leaves(kept))     # donate=False keeps the caller's members
    given = unstack_members(make())
    step(given, stacked_batch)
    assert jax.tree.leaves(given[0].params)[0].is_deleted()             # the donating step updates them in place
    ev = population_eval(loss, shared_batch=False, members=members)(apart, stacked_batch)
    np.testing.assert_array_equal(ev["loss"], population_eval(loss, shared_batch=False)(ref, stacked_batch)["loss"])
