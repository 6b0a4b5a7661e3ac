"""Population training: one vmapped compiled step equals N separate runs."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, make_update
from deepcore.train.population import (init_population, member, population_eval, population_step,
                                       set_hyperparams)

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
