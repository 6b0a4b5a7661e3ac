"""The default compiler-option rule of the step builders: YNNPACK fusions on a CPU for programs with
convolutions, XLA's defaults otherwise, recorded per compiled signature; explicit options override it."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore import layers as L
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.compile_options import YNN_FUSION, choose

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rule's CPU branch")


def step_and_batch(net, x_shape, **kw):
    tx = optax.sgd(0.1)
    x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
    batch = {"x": x, "y": jnp.zeros((x_shape[0],), jnp.int32)}
    state = init_state(net, jax.ShapeDtypeStruct(x.shape, x.dtype), tx, seed=0)
    return train_step(classifier_loss(net), tx, donate=False, **kw), state, batch


def test_convolutions_get_ynn_fusions_and_dense_programs_xla_defaults():
    cnn = L.serial(L.Conv(4, (3, 3)), L.Relu, L.GlobalAvgPool(), L.Dense(3))
    mlp = L.serial(L.Flatten(), L.Dense(8), L.Relu, L.Dense(3))
    for net, options in ((cnn, YNN_FUSION), (mlp, {})):
        step, state, batch = step_and_batch(net, (2, 6, 6, 1))
        _, m = step(state, batch)
        assert np.isfinite(float(m["loss"]))
        assert step.choice["options"] == options, step.choice
        assert ("has convolutions" in step.choice["reason"]) == bool(options)


def test_explicit_options_override_the_rule():
    cnn = L.serial(L.Conv(4, (3, 3)), L.GlobalAvgPool(), L.Dense(3))
    step, state, batch = step_and_batch(cnn, (2, 6, 6, 1), compiler_options={})
    assert not hasattr(step, "choices")            # plain jax.jit: nothing chosen
    auto, _, _ = step_and_batch(cnn, (2, 6, 6, 1))
    np.testing.assert_allclose(step(state, batch)[1]["loss"], auto(state, batch)[1]["loss"], rtol=1e-5)


def test_rule_on_other_backends_is_xla_defaults():
    lowered = jax.jit(lambda x: x @ x).lower(jnp.ones((2, 2)))
    assert choose(lowered, backend="gpu") == ({}, "gpu: XLA's defaults")


def test_the_step_still_traces_under_transformations():
    step, state, batch = step_and_batch(L.serial(L.Flatten(), L.Dense(3)), (2, 4))
    jaxpr = jax.make_jaxpr(step)(state, batch)
    assert "pjit" in str(jaxpr) or "jit" in str(jaxpr)
    np.testing.assert_allclose(jax.jit(step)(state, batch)[1]["loss"], step(state, batch)[1]["loss"], rtol=1e-6)
