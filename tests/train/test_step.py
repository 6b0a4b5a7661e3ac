"""Train/eval step builders: updates, donation, per-example grads, DP-SGD, accumulation, EMA, bf16, options."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore.core import layer, simple_init
from deepcore.layers import serial
from deepcore.train import (DPSGD, classifier_loss, eval_step, init_state, make_update, per_example_grads,
                            train_step)

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("train_test_step")

MODEL = C.model()
LOSS = classifier_loss(MODEL)
BATCH = C.batch_at(0)


def fresh(tx, **kw):
    return init_state(MODEL, C.spec(), tx, seed=0, **kw)


@jax.jit
def batch_grad(state, batch):
    return jax.grad(lambda p: LOSS(p, state.model_state, batch, None, True)[0])(state.params)


@jax.jit
def eval_loss(params, batch):
    return LOSS(params, {}, batch, None, False)[0]


PER_EXAMPLE = jax.jit(per_example_grads(LOSS))


def assert_tree_close(a, b, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


@pytest.fixture(scope="session")
def sgd_step():
    return train_step(LOSS, optax.sgd(1.0))


def test_sgd_step_is_params_minus_lr_grad_and_counts(sgd_step):
    s0 = fresh(optax.sgd(1.0))
    expected = jax.tree.map(lambda p, g: p - g, s0.params, batch_grad(s0, BATCH))
    s1, m = sgd_step(s0, BATCH)
    assert int(s1.step) == 1
    assert set(m) >= {"loss", "accuracy", "grad_norm"}
    assert_tree_close(s1.params, expected, 1e-6)
    loss0 = float(eval_loss(expected, BATCH))
    assert float(m["loss"]) > loss0  # the reported loss is the pre-update one; the update lowered it


def test_step_donates_the_input_state(sgd_step):
    s0 = fresh(optax.sgd(1.0))
    w = s0.params["dense_0"]["w"]
    sgd_step(s0, BATCH)
    assert w.is_deleted()
    keep = train_step(LOSS, optax.sgd(1.0), donate=False)
    s0 = fresh(optax.sgd(1.0))
    keep(s0, BATCH)
    assert not s0.params["dense_0"]["w"].is_deleted()


def test_per_example_grads_are_single_example_grads():
    s = fresh(optax.sgd(1.0))
    losses, g, _ = PER_EXAMPLE(s.params, s.model_state, BATCH, jax.random.PRNGKey(0))
    assert losses.shape == (C.BATCH,)
    one = {k: v[3:4] for k, v in BATCH.items()}
    assert_tree_close(jax.tree.map(lambda a: a[3], g), batch_grad(s, one), 1e-6)
    assert_tree_close(jax.tree.map(lambda a: a.mean(0), g), batch_grad(s, BATCH), 1e-6)


def test_dpsgd_clips_each_example_then_averages_and_adds_noise():
    s = fresh(optax.sgd(1.0))
    _, g, _ = PER_EXAMPLE(s.params, s.model_state, BATCH, jax.random.PRNGKey(0))
    norms = np.sqrt(sum(np.sum(np.asarray(a).reshape(C.BATCH, -1) ** 2, 1) for a in jax.tree.leaves(g)))
    clip = float(np.median(norms))  # about half the examples get clipped
    scale = np.minimum(1.0, clip / norms)
    expected = jax.tree.map(lambda p, a: p - np.tensordot(scale, np.asarray(a), 1) / C.BATCH, s.params, g)
    s1, m = jax.jit(make_update(LOSS, optax.sgd(1.0), dp=DPSGD(clip, 0.0)))(s, BATCH)
    assert_tree_close(s1.params, expected, 1e-6)
    assert abs(float(m["clipped_fraction"]) - np.mean(norms > clip)) < 1e-6

    noisy, _ = jax.jit(make_update(LOSS, optax.sgd(1.0), dp=DPSGD(clip, 2.0)))(s, BATCH)
    diff = C.flat(noisy.params) - C.flat(s1.params)
    std = 2.0 * clip / C.BATCH
    assert 0.8 * std < diff.std() < 1.2 * std  # ~500 parameters: the noise has the documented scale


def test_accumulation_equals_full_batch_and_threads_model_state():
    # a stateful pass-through layer that counts training calls, to see the state go through the scan
    def apply(p, s, x, *, key=None, train=False):
        return x, ({"n": s["n"] + 1} if train else s)

    counter = layer("counter", simple_init(lambda k, spec: ({}, {"n": jnp.zeros((), jnp.int32)}), apply), apply)
    model = serial(counter, MODEL)
    loss = classifier_loss(model)
    tx = optax.sgd(0.5)
    s = init_state(model, C.spec(), tx, seed=0)
    full = jax.jit(make_update(loss, tx))
    accum = jax.jit(make_update(loss, tx, accum_steps=4))
    a, b = s, s
    for t in range(3):
        a, ma = full(a, C.batch_at(t))
        b, mb = accum(b, C.batch_at(t))
        assert abs(float(ma["loss"]) - float(mb["loss"])) < 1e-6
    assert_tree_close(a.params, b.params, 1e-6)
    assert int(a.model_state["counter_0"]["n"]) == 3 and int(b.model_state["counter_0"]["n"]) == 12
    with pytest.raises(ValueError, match="not divisible by accum_steps=3"):
        jax.jit(make_update(loss, tx, accum_steps=3))(s, BATCH)


def test_ema_follows_its_formula_and_eval_can_use_it():
    tx = optax.sgd(1.0)
    s0 = fresh(tx, ema=True)
    p0 = s0.params
    step = train_step(LOSS, tx, ema_decay=0.9, donate=False)
    s1, _ = step(s0, BATCH)   # the warm-up: decay min(0.9, (1 + 0) / (10 + 0)) = 0.1 at the first update
    assert_tree_close(s1.ema, jax.tree.map(lambda a, b: 0.1 * a + 0.9 * b, p0, s1.params), 1e-6)
    s = s1
    for _ in range(11):       # to step 12, where the decay is min(0.9, 13 / 22)
        s, _ = step(s, BATCH)
    s13, _ = step(s, BATCH)
    assert_tree_close(s13.ema, jax.tree.map(lambda e, p: (13 / 22) * e + (9 / 22) * p, s.ema, s13.params), 1e-6)
    ev = eval_step(LOSS, use_ema=True)(s1, BATCH)
    assert abs(float(ev["loss"]) - float(eval_loss(s1.ema, BATCH))) < 1e-6
    with pytest.raises(ValueError, match="ema=True"):
        train_step(LOSS, tx, ema_decay=0.9)(fresh(tx), BATCH)


def test_bfloat16_compute_keeps_float32_params_and_optimizer_state():
    tx = optax.adam(1e-2)
    step32 = train_step(LOSS, tx, donate=False)
    step16 = train_step(LOSS, tx, compute_dtype=jnp.bfloat16, donate=False)
    s = fresh(tx)
    a, ma = step32(s, BATCH)
    b, mb = step16(s, BATCH)
    for leaf in jax.tree.leaves((b.params, b.opt_state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    assert float(ma["loss"]) != float(mb["loss"])  # the forward pass really ran in bfloat16 ...
    assert abs(float(ma["loss"]) - float(mb["loss"])) < 2e-2 * float(ma["loss"])  # ... and stayed close
    ev = eval_step(LOSS, compute_dtype=jnp.bfloat16)(b, BATCH)
    assert ev["loss"].dtype == jnp.float32


def test_compiler_options_reach_xla_per_function():
    tx = optax.sgd(1.0)
    s = fresh(tx)
    plain, _ = train_step(LOSS, tx, donate=False)(s, BATCH)
    opt = train_step(LOSS, tx, donate=False, compiler_options={"xla_cpu_enable_fast_math": False})
    with_opts, _ = opt(s, BATCH)
    with_opts, _ = opt(s, BATCH)  # second call reuses the compiled executable
    assert opt._cache_size() == 1   # jax.jit(..., compiler_options=) compiled it once
    assert_tree_close(plain.params, with_opts.params, 1e-7)
    with pytest.raises(Exception, match="no_such_xla_option"):
        train_step(LOSS, tx, compiler_options={"no_such_xla_option": True})(s, BATCH)


def test_eval_step_runs_in_eval_mode_without_touching_state():
    s = fresh(optax.sgd(1.0))
    m = eval_step(LOSS)(s, BATCH)
    assert set(m) == {"loss", "accuracy"}
    assert abs(float(m["loss"]) - float(eval_loss(s.params, BATCH))) < 1e-6
    assert int(s.step) == 0
