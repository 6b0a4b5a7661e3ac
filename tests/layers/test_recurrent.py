"""Recurrent cells and layers: numpy references, scan vs a Python loop, masks, carries, gradients over 20 steps."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import ShapeError
from deepcore.gradcheck import assert_grads_ok
from deepcore.layers.recurrent import (GRU, LSTM, Bidirectional, GRUCell, LSTMCell, RNN, SequenceInput, SimpleRNN,
                                       SimpleRNNCell, length_mask, scan_cell)

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("layers_test_recurrent")

D, H = 3, 4


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def ref_rnn(p, h, x):
    h = np.tanh(x @ p["wi"] + p["b"] + h @ p["wh"])
    return h, h


def ref_lstm(p, carry, x, peep=False):
    h, c = carry
    n = h.shape[-1]
    z = x @ p["wi"] + p["b"] + h @ p["wh"]
    i, f, g, o = z[..., :n], z[..., n:2 * n], z[..., 2 * n:3 * n], z[..., 3 * n:]
    if peep:
        i, f = i + p["pi"] * c, f + p["pf"] * c
    c = sig(f) * c + sig(i) * np.tanh(g)
    if peep:
        o = o + p["po"] * c
    h = sig(o) * np.tanh(c)
    return (h, c), h


def ref_gru(p, h, x):
    n = h.shape[-1]
    gx, gh = x @ p["wi"] + p["b"], h @ p["wh"]
    r = sig(gx[..., :n] + gh[..., :n])
    z = sig(gx[..., n:2 * n] + gh[..., n:2 * n])
    m = np.tanh(gx[..., 2 * n:] + r * (gh[..., 2 * n:] + p["bhn"]))
    return (1 - z) * m + z * h, (1 - z) * m + z * h


def randomized(params, key):
    """Replace zero-initialised biases / peepholes by random values so the reference sees every term."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [l + 0.3 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])


CELLS = {
    "rnn": (SimpleRNNCell(H), ref_rnn),
    "lstm": (LSTMCell(H), ref_lstm),
    "lstm_peep": (LSTMCell(H, peepholes=True), lambda p, c, x: ref_lstm(p, c, x, peep=True)),
    "gru": (GRUCell(H), ref_gru),
}


def np_tree(t):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), t)


def random_carry(cell, key, batch):
    c = cell.zero_carry(batch, jnp.float32)
    leaves, tree = jax.tree.flatten(c)
    return jax.tree.unflatten(tree, [jax.random.normal(k, l.shape) for l, k in
                                     zip(leaves, jax.random.split(key, len(leaves)))])


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_step_matches_numpy_reference(name):
    cell, ref = CELLS[name]
    params = randomized(cell.init(jax.random.key(0), D, jnp.float32), jax.random.key(1))
    carry = random_carry(cell, jax.random.key(2), (5,))
    x = jax.random.normal(jax.random.key(3), (5, D))
    (c_new, h) = cell.step(params, carry, x)
    c_ref, h_ref = ref(np_tree(params), np_tree(carry), np.asarray(x, np.float64))
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), c_new, c_ref)


def test_lstm_init_forget_bias_and_peepholes():
    p = LSTMCell(H, forget_bias=1.0).init(jax.random.key(0), D, jnp.float32)
    assert set(p) == {"wi", "wh", "b"}
    np.testing.assert_array_equal(p["b"], np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    assert p["wi"].shape == (D, 4 * H) and p["wh"].shape == (H, 4 * H)
    # each recurrent gate block is orthogonal
    w = np.asarray(p["wh"][:, H:2 * H])
    np.testing.assert_allclose(w.T @ w, np.eye(H), atol=1e-5)
    pp = LSTMCell(H, peepholes=True, forget_bias=2.0).init(jax.random.key(0), D, jnp.float32)
    assert set(pp) == {"wi", "wh", "b", "pi", "pf", "po"}
    assert float(pp["b"][H]) == 2.0


@pytest.mark.parametrize("name,hoist,reverse", [("lstm", "per_step", False), ("lstm_peep", "fused", True),
                                                ("gru", "hoisted", False), ("rnn", "fused", False),
                                                ("lstm", True, True), ("gru", False, True)])
def test_scan_matches_python_loop(name, hoist, reverse):
    cell, _ = CELLS[name]
    params = randomized(cell.init(jax.random.key(0), D, jnp.float32), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(4), (2, 7, D))
    carry0 = random_carry(cell, jax.random.key(5), (2,))
    carry_T, hs = scan_cell(cell, params, carry0, xs, hoist_input=hoist, reverse=reverse)
    carry, outs = carry0, [None] * 7
    for t in (range(6, -1, -1) if reverse else range(7)):
        carry, outs[t] = cell.step(params, carry, xs[:, t])
    np.testing.assert_allclose(hs, jnp.stack(outs, axis=1), rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), carry_T, carry)


@pytest.fixture(scope="session")
def lstm_layer():
    lay = LSTM(H)
    _, params, _ = lay.init(jax.random.key(0), (2, 6, D))
    return lay, randomized(params, jax.random.key(1))


def test_layer_hoisted_equals_in_loop_and_unbatched_equals_batched(lstm_layer):
    lay, params = lstm_layer
    x = jax.random.normal(jax.random.key(2), (2, 6, D))
    y = lay.apply(params, {}, x)[0]
    y_h = LSTM(H, hoist_input="hoisted", unroll=3).apply(params, {}, x)[0]
    np.testing.assert_allclose(y, y_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lay.apply(params, {}, x[1])[0], y[1], rtol=1e-5, atol=1e-5)
    last = LSTM(H, return_sequences=False).apply(params, {}, x)[0]
    np.testing.assert_allclose(last, y[:, -1], rtol=1e-6)


def test_mask_ignores_padding(lstm_layer):
    lay, params = lstm_layer
    x = jax.random.normal(jax.random.key(2), (2, 6, D))
    mask = length_mask(jnp.array([6, 3]), 6)
    cot = jax.random.normal(jax.random.key(3), (2, 6, H))

    def loss(x):
        y, carry = lay.apply(params, {}, SequenceInput(x, mask))[0]
        return jnp.vdot(y, cot) + jnp.sum(carry[0]) + jnp.sum(carry[1]), (y, carry)

    g, (y, carry) = jax.grad(loss, has_aux=True)(x)
    assert np.all(np.asarray(y[1, 3:]) == 0), "outputs at padded steps are zero"
    assert np.all(np.asarray(g[1, 3:]) == 0), "padded inputs get zero gradient"
    assert np.all(np.abs(np.asarray(g[1, :3])) > 0) and np.all(np.abs(np.asarray(g[0])) > 0)
    # the final carry of the short sequence is the carry at its last valid step
    y3, c3 = lay.apply(params, {}, SequenceInput(x[1:, :3]))[0]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1:], b, rtol=1e-5, atol=1e-6), carry, c3)
    np.testing.assert_allclose(y[1:, :3], y3, rtol=1e-5, atol=1e-6)
    # garbage in the padding changes nothing
    y_junk = lay.apply(params, {}, SequenceInput(x.at[1, 3:].set(1e3), mask))[0][0]
    np.testing.assert_array_equal(y_junk, y)


def test_bidirectional_backward_respects_lengths():
    cell = GRUCell(H)
    bi = Bidirectional(cell)
    x = jax.random.normal(jax.random.key(2), (2, 6, D))
    _, params, _ = bi.init(jax.random.key(0), x)
    (y, _), _ = bi.apply(params, {}, SequenceInput(x, length_mask(jnp.array([6, 4]), 6)))
    assert y.shape == (2, 6, 2 * H)
    _, yb = scan_cell(cell, params["backward"], None, x[1, :4], reverse=True)  # the true 4-step backward run
    _, yf = scan_cell(cell, params["forward"], None, x[1, :4])
    np.testing.assert_allclose(y[1, :4], jnp.concatenate([yf, yb], -1), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(y[1, 4:]) == 0)
    last = Bidirectional(cell, return_sequences=False).apply(params, {}, SequenceInput(x, length_mask(jnp.array([6, 4]), 6)))
    np.testing.assert_allclose(last[0][0][1], jnp.concatenate([yf[-1], yb[0]]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: LSTM(H, num_layers=2), lambda: Bidirectional(GRUCell(H))],
                         ids=["lstm_stack2", "bigru"])
def test_carry_round_trip_two_halves_equal_whole(make):
    lay = make()
    x = jax.random.normal(jax.random.key(2), (2, 8, D))
    _, params, _ = lay.init(jax.random.key(0), x)
    if lay.name == "bidirectional":  # a backward run over halves is not the whole; the forward half is
        y, _ = lay.apply(params, {}, SequenceInput(x))[0]
        y1, c1 = lay.apply(params, {}, SequenceInput(x[:, :4]))[0]
        y2, _ = lay.apply(params, {}, SequenceInput(x[:, 4:], carry=c1))[0]
        np.testing.assert_allclose(jnp.concatenate([y1, y2], 1)[..., :H], y[..., :H], rtol=1e-5, atol=1e-6)
        return
    y, c = lay.apply(params, {}, SequenceInput(x))[0]
    y1, c1 = lay.apply(params, {}, SequenceInput(x[:, :5]))[0]
    y2, c2 = lay.apply(params, {}, SequenceInput(x[:, 5:], carry=c1))[0]
    assert isinstance(c2, tuple) and len(c2) == 2
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), c2, c)
    np.testing.assert_allclose(lay.apply(params, {}, x)[0], y, rtol=1e-6)  # plain array in -> y alone


@pytest.mark.parametrize("make", [lambda: LSTM(2, peepholes=True), lambda: GRU(2, hoist_input="hoisted"),
                                  lambda: SimpleRNN(2)], ids=["lstm_peep", "gru", "rnn"])
def test_gradient_through_20_steps_matches_finite_differences(make):
    lay = make()
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(2), (1, 20, 2), jnp.float64)
        _, params, _ = lay.init(jax.random.key(0), x)
        params = randomized(params, jax.random.key(1))

        def outputs(p, x):
            return lay.apply(p, {}, x)[0]

        # per leaf in float64, forward and reverse mode against finite differences
        assert_grads_ok(outputs, (params, x), argnums=(0, 1), modes=("fast",), name=lay.name)
        # the last output depends on the first input through 20 recurrent steps (however faintly)
        g = jax.grad(lambda x: jnp.sum(lay.apply(params, {}, x)[0][0, -1]))(x)
        assert float(jnp.abs(g[0, 0]).max()) > 0


def test_shape_errors_name_layer_expected_and_actual(lstm_layer):
    lay, params = lstm_layer
    with pytest.raises(ShapeError, match=r"lstm: expected a sequence \(B, T, 3\) or \(T, 3\), got \(2, 6, 5\)"):
        lay.apply(params, {}, jnp.zeros((2, 6, 5)))
    with pytest.raises(ShapeError, match=r"expected a mask of shape \(2, 6\)"):
        lay.apply(params, {}, SequenceInput(jnp.zeros((2, 6, D)), jnp.ones((2, 5), bool)))
    with pytest.raises(ValueError, match="hoist_input must be"):
        LSTM(H, hoist_input="yes").apply(params, {}, jnp.zeros((2, 6, D)))
    with pytest.raises(ShapeError, match=r"got \(3,\)"):
        RNN(GRUCell(2)).init(jax.random.key(0), (3,))
