"""``compose`` (a layer from named sub-layers) and ``parallel`` with a merge function, against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import ShapeError, summary
from deepcore.gradcheck import check_layer
from deepcore.layers import (BatchNorm, Dense, Dropout, GlobalAvgPool, Identity, Relu, Reshape, Sigmoid, compose,
                             parallel, serial)

X = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
sig = lambda z: 1 / (1 + np.exp(-z))


def lin(p, x):
    return x.astype(np.float64) @ np.asarray(p["w"], np.float64) + np.asarray(p["b"], np.float64)


def gated_skip(d):
    def forward(call, x):
        return call("proj", x) * jax.nn.sigmoid(call("gate", x)) + call("skip", call("proj", x))
    return compose("gated_skip", {"proj": Dense(d), "gate": Dense(d), "skip": Dense(d)}, forward)


def test_compose_builds_children_from_the_specs_they_see_and_equals_numpy():
    lay = gated_skip(3)
    out, params, state = lay.init(jax.random.PRNGKey(0), X.shape)
    assert out.shape == (4, 3) and state == {}
    assert params["proj"]["w"].shape == (6, 3) and params["skip"]["w"].shape == (3, 3)  # skip sees proj's output
    assert not np.allclose(params["proj"]["w"], params["gate"]["w"])  # own keys
    y, _ = lay.apply(params, state, X)
    h = lin(params["proj"], X)
    np.testing.assert_allclose(y, h * sig(lin(params["gate"], X)) + lin(params["skip"], h), rtol=1e-5, atol=1e-6)
    assert check_layer(lay, (3, 6)).ok
    table = summary(lay, None, X.shape)
    assert "skip" in table and "(3, 3)" in table


def test_compose_state_keys_mode_and_errors():
    def forward(call, x):
        assert call.train in (True, False)
        return call("drop", call("bn", x))
    lay = compose("bn_drop", {"bn": BatchNorm(), "drop": Dropout(0.5), "unused": Relu}, lambda c, x: forward(c, x))
    with pytest.raises(ValueError, match=r"^compose bn_drop: child 'unused' is never called by forward$"):
        lay.init(jax.random.PRNGKey(0), X.shape)
    lay = compose("bn_drop", {"bn": BatchNorm(), "drop": Dropout(0.5)}, forward)
    _, params, state = lay.init(jax.random.PRNGKey(0), X.shape)
    assert set(params) == {"bn"} and set(state) == {"bn"}
    y, new_state = lay.apply(params, state, X, key=jax.random.PRNGKey(1), train=True)
    assert not np.allclose(new_state["bn"]["mean"], state["bn"]["mean"]) and np.mean(np.asarray(y) == 0) > 0.2
    bad = compose("two", {"a": Dense(3), "b": Dense(5)}, lambda call, x: call("a", x) + call("b", x))
    with pytest.raises(ShapeError, match=r"^two: forward failed on input \(4, 6\) .*incompatible shapes"):
        bad.init(jax.random.PRNGKey(0), X.shape)


@pytest.mark.parametrize("merge", ["product", jnp.multiply, lambda a, b: a * b])
def test_parallel_product_is_a_glu(merge):
    glu = parallel(Dense(3), serial(Dense(3), Sigmoid), merge=merge)
    _, p, s = glu.init(jax.random.PRNGKey(0), X.shape)
    y, _ = glu.apply(p, s, X)
    names = list(p)
    want = lin(p[names[0]], X) * sig(lin(p[names[1]]["dense_0"], X))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_squeeze_and_excitation_composes_from_parallel():
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 4)).astype(np.float32)
    gate = serial(GlobalAvgPool(), Dense(2), Relu, Dense(4), Sigmoid, Reshape((1, 1, 4)))
    se = parallel(Identity, gate, merge="product")
    _, p, s = se.init(jax.random.PRNGKey(0), x.shape)
    y, _ = se.apply(p, s, x)
    g = p["serial_0"]
    want_gate = sig(lin(g["dense_1"], np.maximum(lin(g["dense_0"], x.mean((1, 2))), 0)))
    np.testing.assert_allclose(y, x * want_gate[:, None, None, :], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^parallel: merge: expected one of \('sum', 'product', 'concat', None\) "
                                         r"or a function, got 'max'$"):
        parallel(Identity, gate, merge="max")


def test_capture_reaches_inside_a_composed_layer():
    from deepcore.interpret import capture
    lay = serial(gated_skip(3), Relu)
    _, params, state = lay.init(jax.random.PRNGKey(0), X.shape)
    y, _, got = capture(lay, ["gated_skip_0/proj", "gated_skip_0/skip"])(params, state, X)
    p = params["gated_skip_0"]
    h = lin(p["proj"], X)
    np.testing.assert_allclose(got["gated_skip_0/proj"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["gated_skip_0/skip"], lin(p["skip"], h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, lay.apply(params, state, X)[0], rtol=1e-6)
