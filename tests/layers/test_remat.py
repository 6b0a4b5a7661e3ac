"""Remat(layer, policy) around any layer: same outputs, state and gradients; policies by name; bad names fail."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.layers.remat import POLICIES, Remat, remat_policy

NET = L.serial(L.Dense(8), L.BatchNorm(), L.Relu, L.Dropout(0.2), L.Dense(3))


@pytest.mark.parametrize("policy", ["nothing", "dots", "dots_no_batch", "names:x", "everything",
                                    jax.checkpoint_policies.nothing_saveable])
def test_remat_equals_the_plain_layer_with_state_dropout_and_gradients(policy):
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
    _, params, state = NET.init(jax.random.PRNGKey(1), x)
    wrapped = Remat(NET, policy)
    assert wrapped.init(jax.random.PRNGKey(1), x)[1].keys() == params.keys()

    def loss(layer, p):
        y, s = layer.apply(p, state, x, key=jax.random.PRNGKey(2), train=True)
        return jnp.sum(y ** 2), s

    (l1, s1), g1 = jax.jit(jax.value_and_grad(lambda p: loss(NET, p), has_aux=True))(params)
    (l2, s2), g2 = jax.jit(jax.value_and_grad(lambda p: loss(wrapped, p), has_aux=True))(params)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), (s1, g1), (s2, g2))


def test_remat_recomputes_the_forward_in_the_backward_pass():
    x = jnp.ones((4, 5))
    _, params, state = NET.init(jax.random.PRNGKey(1), x)

    def dots(layer):
        f = jax.grad(lambda p: jnp.sum(layer.apply(p, state, x)[0]))
        return str(jax.make_jaxpr(f)(params)).count("dot_general")

    assert dots(Remat(NET, "nothing")) > dots(NET)


def test_unknown_policy_names_the_choices():
    with pytest.raises(ValueError, match="remat policy must be one of"):
        Remat(NET, "sometimes")
    assert remat_policy(None) is None and "nothing" in POLICIES
