"""Initialisers: the same kinds, signatures and numbers as ``jax.nn.initializers``; every one documented."""
import inspect

import jax
import jax.nn.initializers as ji
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import initializers as I
from deepcore.layers import Dense

KEY = jax.random.PRNGKey(0)
SHAPE = (3, 3, 4, 8)  # a conv kernel: fans include the receptive field


@pytest.mark.parametrize("name", I.FACTORIES)
def test_factories_match_jax(name):
    mine, theirs = getattr(I, name), getattr(ji, name.replace("xavier", "glorot").replace("kaiming", "he"))
    args = {"constant": (0.3,), "variance_scaling": (2.0, "fan_out", "normal")}.get(name, ())
    got, want = mine(*args)(KEY, SHAPE, jnp.float32), theirs(*args)(KEY, SHAPE, jnp.float32)
    np.testing.assert_array_equal(got, want)
    assert "Factory" in inspect.getdoc(mine), name


@pytest.mark.parametrize("name", I.INITIALIZERS)
def test_initializers_match_jax(name):
    np.testing.assert_array_equal(getattr(I, name)(KEY, SHAPE, jnp.float32),
                                  getattr(ji, name)(KEY, SHAPE, jnp.float32))
    assert "Initialiser (not a factory)" in inspect.getdoc(getattr(I, name))


def test_fan_factories_also_accept_the_initialiser_call_and_pass_their_axes():
    np.testing.assert_array_equal(I.he_normal(KEY, SHAPE), ji.he_normal()(KEY, SHAPE))
    np.testing.assert_array_equal(I.glorot_uniform(KEY, (4, 5), jnp.float32), ji.glorot_uniform()(KEY, (4, 5)))
    np.testing.assert_array_equal(I.he_normal(in_axis=0, out_axis=1)(KEY, (4, 5)),
                                  ji.he_normal(in_axis=0, out_axis=1)(KEY, (4, 5)))
    assert I.he_normal(KEY, (4, 5), jnp.bfloat16).dtype == jnp.bfloat16


def test_the_jax_habit_works_in_a_layer():
    _, params, _ = Dense(8, w_init=I.he_normal(), b_init=I.constant(0.5)).init(KEY, (2, 16))
    assert params["w"].shape == (16, 8)
    np.testing.assert_allclose(np.std(np.asarray(params["w"])), np.sqrt(2 / 16), rtol=0.35)
    np.testing.assert_array_equal(params["b"], np.full(8, 0.5, np.float32))
