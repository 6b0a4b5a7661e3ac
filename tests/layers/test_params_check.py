"""Parameters that do not fit the model, and token ids outside the vocabulary, are refused naming the place."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L
from deepcore.core import ShapeError, layer
from deepcore.paramcheck import check_params
from deepcore.models.mlp import MLP

KEY = jax.random.PRNGKey(0)
X = jnp.ones((4, 12))


def _params(model, spec=(4, 12)):
    return model.init(KEY, spec)[1]


def test_params_of_a_deeper_mlp_are_refused_naming_the_first_differing_path():
    shallow, deep = MLP(3, (8,)), MLP(3, (8, 8))
    # without the check these params give logits of the wrong width (8, from deep's dense_1): silently
    for apply in (shallow.apply, jax.jit(shallow.apply)):
        with pytest.raises(ShapeError) as e:
            apply(_params(deep), {}, X)
        # (under jit, JAX appends a note on its traceback filtering after the message's line)
        assert str(e.value).splitlines()[0] == "serial/dense_1/b: expected a parameter of shape (3,), got (8,)"
    y, _ = shallow.apply(_params(shallow), {}, X)
    assert y.shape == (4, 3)


def test_missing_extra_and_reshaped_parameters_name_their_path():
    model = L.serial(L.Dense(5), L.Relu, L.serial(L.Dense(2), L.Dense(2)))
    good = _params(model)
    missing = {"dense_0": good["dense_0"], "serial_0": {"dense_0": good["serial_0"]["dense_0"]}}
    with pytest.raises(ShapeError, match=r"^serial/serial_0/dense_1/b: expected a parameter of shape \(2,\), "
                                         r"got none$"):
        model.apply(missing, {}, X)
    extra = {**good, "dense_9": {"w": jnp.ones((2, 2))}}
    with pytest.raises(ShapeError, match=r"^serial/dense_9/w: expected no parameter here .*got one of shape \(2, 2\)$"):
        model.apply(extra, {}, X)
    wide = {**good, "dense_0": {"w": jnp.ones((12, 6)), "b": jnp.ones(6)}}   # breaks the next dense inside jnp
    with pytest.raises(ShapeError, match=r"^serial/dense_0/b: expected a parameter of shape \(5,\), got \(6,\)$"):
        model.apply(wide, {}, X)


def test_the_layer_own_input_check_comes_first_and_dtypes_are_not_compared():
    model = L.serial(L.Dense(5), L.Dense(2))
    params = _params(model)
    with pytest.raises(ShapeError, match=r"^serial/dense_0: expected input \(\.\.\., 12\), got \(4, 7\)$"):
        model.apply(params, {}, jnp.ones((4, 7)))
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)                # mixed precision casts
    assert model.apply(half, {}, X.astype(jnp.bfloat16))[0].shape == (4, 2)
    check_params(model.init, params, jnp.ones((9, 12)))                          # batch size is free


def test_the_check_traces_init_only_for_input_shapes_init_was_not_called_with():
    calls = []
    dense = L.Dense(3)
    counting = layer("counting", lambda k, s: (calls.append(s.shape), dense.init(k, s))[1], dense.apply)
    params = _params(counting)                                                   # init on (4, 12): recorded
    for _ in range(3):
        counting.apply(params, {}, X)
        jax.jit(counting.apply)(params, {}, X)
    assert calls == [(4, 12)]                                                    # the init call itself only
    for _ in range(3):
        counting.apply(params, {}, jnp.ones((9, 12)))
    assert calls == [(4, 12), (9, 12)]                                           # traced once for a new shape


def test_token_ids_outside_the_vocabulary_are_refused_or_nan_under_jit():
    model = L.serial(L.Embedding(5, 3), L.Dense(2))
    params = _params(model, jnp.zeros((2, 4), jnp.int32))
    for bad, value in ((5, 5), (-1, -1)):
        ids = jnp.array([[0, 1, 2, 3], [4, 4, bad, 0]])
        with pytest.raises(ShapeError, match=rf"^serial/embedding_0: expected token ids in \[0, 5\), got {value} "
                                             r"at index \(1, 2\)$"):
            model.apply(params, {}, ids)
        y = np.asarray(jax.jit(model.apply)(params, {}, ids)[0])
        assert np.isnan(y[1, 2]).all() and np.isfinite(np.delete(y.reshape(8, 2), 6, axis=0)).all()
