"""deepcore.core.layer: a layer taking an ``(x, labels)`` pair (``pair_x_rank``), its errors rooted at the layer,
and the parameter check of the outermost apply (a nested apply leaves it to its parent)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError, layer


def _labelled_dense():
    """``(x (..., D), labels (...)) -> x @ w + table[labels]``."""

    def init(key, specs):
        x_spec, _ = specs
        params = {"w": jnp.ones((x_spec.shape[-1], 3)), "table": jnp.arange(12.0).reshape(4, 3)}
        return jax.ShapeDtypeStruct(x_spec.shape[:-1] + (3,), jnp.float32), params, {}

    def apply(params, state, x, labels, *, key=None, train=False):
        return x @ params["w"] + params["table"][labels], state

    return layer("labelled", init, apply, pair_x_rank=1)


def test_pair_layer_runs_and_checks_its_input():
    lay = _labelled_dense()
    x, y = jnp.ones((2, 5)), jnp.array([1, 3])
    out, params, _ = lay.init(jax.random.PRNGKey(0), (x, y))
    assert out.shape == (2, 3)
    got, _ = lay.apply(params, {}, (x, y))
    np.testing.assert_array_equal(got, 5.0 + np.arange(12.0).reshape(4, 3)[[1, 3]])
    with pytest.raises(ShapeError, match=r"^labelled: expected an \(x, labels\) pair, got "):
        lay.init(jax.random.PRNGKey(0), x)
    with pytest.raises(ShapeError, match=r"^labelled: expected an \(x, labels\) pair$"):
        lay.apply(params, {}, x)
    with pytest.raises(ShapeError, match=r"^labelled: expected integer labels of shape \(2,\) for x of shape "
                                         r"\(2, 5\), got float32 \(2,\)$"):
        lay.apply(params, {}, (x, jnp.zeros((2,))))
    with pytest.raises(ShapeError, match=r"^serial/labelled_0: expected integer labels of shape \(2,\)"):
        L.serial(lay).apply({"labelled_0": params}, {}, (x, jnp.array([[1, 2]])))


def test_outermost_apply_names_a_wrong_parameter_nested_one_does_not_check():
    lay = _labelled_dense()
    x, y = jnp.ones((2, 5)), jnp.array([1, 3])
    _, params, _ = lay.init(jax.random.PRNGKey(0), (x, y))
    bad = dict(params, table=jnp.zeros((4, 7)))
    with pytest.raises(ShapeError, match=r"^labelled/table: expected a parameter of shape \(4, 3\), got \(4, 7\)$"):
        lay.apply(bad, {}, (x, y))
    outer = layer("outer", lambda k, s: lay.init(k, s),
                  lambda p, s, x, y, key=None, train=False: lay.apply(p, s, (x, y)), pair_x_rank=1)
    with pytest.raises(ShapeError, match=r"^outer/table: expected a parameter of shape \(4, 3\), got \(4, 7\)$"):
        outer.apply(bad, {}, (x, y))


def test_a_layer_with_logical_axes_is_hashable_and_can_be_a_static_jit_argument():
    """``axes`` dicts are frozen: a model stays usable as ``jax.jit``'s static argument (interpret.member_probs)."""
    import functools

    import jax
    import jax.numpy as jnp

    from deepcore import layers as L

    model = L.serial(L.Conv2D(4, 3), L.Relu, L.Flatten(), L.Dense(3))
    hash(model)   # raised TypeError (unhashable dict) before the axes were frozen
    f = jax.jit(lambda m, x: m.apply(m.init(jax.random.PRNGKey(0), x)[1], {}, x)[0], static_argnums=0)
    assert f(model, jnp.ones((2, 6, 6, 1))).shape == (2, 3)
    assert dict(model.children[0][1].axes) == {"w": ("kernel", "kernel", "conv_in", "conv_out"), "b": ("conv_out",)}
