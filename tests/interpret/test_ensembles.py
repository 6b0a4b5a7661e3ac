"""Ensembles: member predictions from a stacked population equal each member's own apply; averaging and report.

(That a population-trained member equals a separately trained model is tests/train/test_population.py's test.)
"""
import jax
import numpy as np
import optax
import pytest

from deepcore.interpret import ensemble_probs, ensemble_report, member_probs
from deepcore.layers import Dense, Relu, serial
from deepcore.train.population import init_population, member


def test_member_predictions_average_and_report():
    model = serial(Dense(8), Relu, Dense(3))
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 4))
    y = np.asarray(jax.random.randint(jax.random.PRNGKey(1), (10,), 0, 3))
    states = jax.jit(lambda: init_population(lambda k: model.init(k, x)[1:], optax.sgd(0.1), seeds=range(3)))()
    probs = member_probs(model, states, x)
    assert probs.shape == (3, 10, 3)
    for i in range(3):
        m = member(states, i)
        own = jax.nn.softmax(model.apply(m.params, m.model_state, x)[0], -1)
        np.testing.assert_allclose(probs[i], own, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ensemble_probs(probs), np.mean(np.asarray(probs), 0), rtol=1e-6)

    rep = ensemble_report(probs, y, num_classes=3, num_bins=5)
    ens = np.mean(np.asarray(probs), 0)
    assert rep["ensemble"]["accuracy"] == pytest.approx(np.mean(ens.argmax(-1) == y))
    accs = [np.mean(np.asarray(p).argmax(-1) == y) for p in probs]
    assert rep["member_mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert [m["accuracy"] for m in rep["members"]] == pytest.approx(accs)
    assert rep["gain"]["ece"] == pytest.approx(rep["ensemble"]["ece"] - rep["member_mean"]["ece"])
    # averaging probabilities never gives a worse NLL than the members' mean (Jensen)
    assert rep["ensemble"]["nll_nats"] <= rep["member_mean"]["nll_nats"] + 1e-6
