"""Activation capture by path: the same values as running the sub-model directly; per-layer statistics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.interpret import capture, grad_norms, layer_paths, layer_stats, split_captured, with_capture
from deepcore.layers import BatchNorm, Dense, Relu, Tanh, parallel, residual, serial

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("interpret_test_capture")


def make():
    block = residual(serial(Dense(8), Relu, Dense(8)))
    model = serial(Dense(8), BatchNorm(), Relu, block, parallel(Dense(3), Tanh, merge="concat"), Dense(4))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 6))
    _, params, state = model.init(jax.random.PRNGKey(0), x)
    return model, params, state, x


@pytest.fixture(scope="session")
def setup():
    return make()


def test_layer_paths_follow_the_parameter_names(setup):
    model, params, _, _ = setup
    paths = layer_paths(model)
    assert list(paths)[:4] == ["dense_0", "batch_norm_0", "relu_0", "residual_0"]
    assert paths["residual_0/body/relu_0"] == "relu" and paths["parallel_0/tanh_0"] == "tanh"
    assert "residual_0/body/dense_1" in paths and "dense_1" in params and "residual_0" in params
    assert "residual_0" not in layer_paths(model, leaves_only=True)


def test_captured_outputs_equal_running_the_sub_models_directly(setup):
    model, p, s, x = setup
    wanted = ["relu_0", "residual_0/body/relu_0", "residual_0", "parallel_0", "parallel_0/tanh_0", "dense_1"]
    run = jax.jit(capture(model, wanted), static_argnames="train")
    for train in (False, True):
        y, new_state, acts = run(p, s, x, train=train)
        y_ref, state_ref = model.apply(p, s, x, train=train)
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # jit vs eager rounding
        close(y, y_ref)
        assert jax.tree.structure(new_state) == jax.tree.structure(state_ref)
        jax.tree.map(close, new_state, state_ref)
        assert set(acts) == set(wanted)

        # the same values, by hand: run the children one by one with their own params and state
        h, _ = serial(Dense(8)).apply({"dense_0": p["dense_0"]}, {}, x)
        bn = serial(BatchNorm())
        h, _ = bn.apply({"batch_norm_0": p["batch_norm_0"]}, {"batch_norm_0": s["batch_norm_0"]}, h, train=train)
        h = jax.nn.relu(h)
        np.testing.assert_allclose(acts["relu_0"], h, rtol=1e-6, atol=1e-6)
        body = p["residual_0"]["body"]
        inner = jax.nn.relu(Dense(8).apply(body["dense_0"], {}, h)[0])
        np.testing.assert_allclose(acts["residual_0/body/relu_0"], inner, rtol=1e-6, atol=1e-6)
        r = Dense(8).apply(body["dense_1"], {}, inner)[0] + h
        np.testing.assert_allclose(acts["residual_0"], r, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(acts["parallel_0/tanh_0"], jnp.tanh(r), rtol=1e-6, atol=1e-6)
        cat = jnp.concatenate([Dense(3).apply(p["parallel_0"]["dense_0"], {}, r)[0], jnp.tanh(r)], -1)
        np.testing.assert_allclose(acts["parallel_0"], cat, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(acts["dense_1"], y_ref, rtol=1e-6, atol=1e-6)


def test_with_capture_keeps_the_layout_and_split_removes_the_records(setup):
    model, p, s, x = setup
    wrapped = with_capture(model, ["relu_0"])
    _, p2, s2 = wrapped.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(p2) == jax.tree.structure(p) and jax.tree.structure(s2) == jax.tree.structure(s)
    _, raw = wrapped.apply(p, s, x)
    clean, acts = split_captured(raw)
    assert set(acts) == {"relu_0"} and jax.tree.structure(clean) == jax.tree.structure(s)
    with pytest.raises(KeyError, match="no layer at \\['relu_9'\\]"):
        capture(model, ["relu_9"])


def test_layer_stats_dead_relus_activation_and_gradient_norms():
    model = serial(Dense(4), Relu, Dense(2))
    x = jnp.abs(jax.random.normal(jax.random.PRNGKey(1), (6, 3)))  # positive inputs
    _, p, s = model.init(jax.random.PRNGKey(0), x)
    w = p["dense_0"]["w"].at[:, :2].set(-jnp.abs(p["dense_0"]["w"][:, :2]))  # units 0, 1: always negative
    w = w.at[:, 2:].set(jnp.abs(w[:, 2:]) + 0.1)                              # units 2, 3: always positive
    p = {**p, "dense_0": {"w": w, "b": jnp.zeros(4)}}
    grads = jax.grad(lambda q: jnp.sum(model.apply(q, s, x)[0] ** 2))(p)
    stats = jax.jit(lambda q, g: layer_stats(model, q, s, x, grads=g))(p, grads)
    assert float(stats["dead_relu/relu_0"]) == pytest.approx(0.5)
    h = jax.nn.relu(x @ w)
    assert float(stats["act_norm/relu_0"]) == pytest.approx(float(jnp.mean(jnp.linalg.norm(h, axis=1))), rel=1e-5)
    assert float(stats["act_rms/dense_1"]) > 0
    g0 = np.sqrt(np.sum(np.asarray(grads["dense_0"]["w"]) ** 2) + np.sum(np.asarray(grads["dense_0"]["b"]) ** 2))
    assert float(stats["grad_norm/dense_0"]) == pytest.approx(g0, rel=1e-5)
    assert set(grad_norms(grads)) == {"grad_norm/dense_0", "grad_norm/dense_1"}
