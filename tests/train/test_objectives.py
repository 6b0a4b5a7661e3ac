"""Loss builders for regression, reconstruction and any (prediction, batch) -> loss, against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore.layers import Dense, Relu, serial
from deepcore.train import init_state, train_step
from deepcore.train.objectives import prediction_loss, reconstruction_loss, regression_loss

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 5)).astype(np.float32)
Y = RNG.normal(size=(6, 3)).astype(np.float32)
MODEL = Dense(3)
_, PARAMS, STATE = MODEL.init(jax.random.PRNGKey(0), X)


def numpy_pred(params, x):
    return x.astype(np.float64) @ np.asarray(params["w"], np.float64) + np.asarray(params["b"], np.float64)


@pytest.mark.parametrize("kind", ["mse", "mae", "huber"])
def test_regression_loss_against_numpy(kind):
    loss, (state, m) = regression_loss(MODEL, loss=kind, delta=0.5)(PARAMS, STATE, {"x": X, "y": Y}, None, False)
    e = numpy_pred(PARAMS, X) - Y
    want = {"mse": np.mean(e ** 2), "mae": np.mean(np.abs(e)),
            "huber": np.mean(np.where(np.abs(e) <= 0.5, 0.5 * e ** 2, 0.5 * (np.abs(e) - 0.25)))}
    np.testing.assert_allclose(loss, want[kind], rtol=1e-5)
    np.testing.assert_allclose(m["mse"], want["mse"], rtol=1e-5)
    np.testing.assert_allclose(m["mae"], want["mae"], rtol=1e-5)
    assert m["loss"] is loss and state == STATE


def test_regression_loss_masks_padded_rows():
    keep = np.array([1, 1, 0, 1, 0, 1], bool)
    y = Y.copy()
    y[~keep] = np.nan  # padding may hold anything
    loss, _ = regression_loss(MODEL, mask="m")(PARAMS, STATE, {"x": X, "y": y, "m": keep}, None, False)
    e = numpy_pred(PARAMS, X[keep]) - Y[keep]
    np.testing.assert_allclose(loss, np.mean(e ** 2), rtol=1e-5)


def test_reconstruction_loss_targets_the_input_and_trains_an_autoencoder():
    ae = serial(Dense(3), Relu, Dense(5))
    loss_fn = reconstruction_loss(ae)
    _, p, s = ae.init(jax.random.PRNGKey(1), X)
    loss, _ = loss_fn(p, s, {"x": X}, None, False)
    np.testing.assert_allclose(loss, np.mean((np.asarray(ae.apply(p, s, X)[0], np.float64) - X) ** 2), rtol=1e-5)
    tx = optax.adam(1e-2)
    state = init_state(ae, X, tx, seed=0)
    step = train_step(loss_fn, tx)
    first = None
    for _ in range(30):
        state, metrics = step(state, {"x": X})
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < 0.8 * first


def test_prediction_loss_takes_any_function_and_refuses_a_non_scalar():
    fn = lambda pred, batch: (jnp.mean(jnp.abs(pred - batch["y"]) ** 3), {"max": jnp.max(pred)})
    loss, (_, m) = prediction_loss(MODEL.apply, fn)(PARAMS, STATE, {"x": X, "y": Y}, None, False)
    np.testing.assert_allclose(loss, np.mean(np.abs(numpy_pred(PARAMS, X) - Y) ** 3), rtol=1e-5)
    np.testing.assert_allclose(m["max"], numpy_pred(PARAMS, X).max(), rtol=1e-5)
    assert set(m) == {"loss", "max"}
    with pytest.raises(ValueError, match=r"^prediction_loss: expected fn\(prediction, batch\) to return a scalar "
                                         r"loss, got shape \(6, 3\)$"):
        prediction_loss(MODEL, lambda pred, batch: pred)(PARAMS, STATE, {"x": X}, None, False)
    with pytest.raises(ValueError, match=r"^regression_loss: expected predictions of the target's shape \(6,\), "
                                         r"got \(6, 3\)$"):
        regression_loss(MODEL)(PARAMS, STATE, {"x": X, "y": Y[:, 0]}, None, False)
    with pytest.raises(ValueError, match=r"^regression_loss: loss: expected one of"):
        regression_loss(MODEL, loss="l2")
