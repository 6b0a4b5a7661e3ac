"""Pytree helpers: counts, paths, get/set, masks, freezing with optax, and the model summary."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore import tree
from deepcore.core import implicit_promotion, layer, simple_init
from deepcore.layers import Dense, Relu, parallel, residual, serial

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("test_tree")


def Counter():
    """A tiny stateful layer (counts its calls) so the summary has a state row."""

    def apply(params, state, x, *, key=None, train=False):
        return x * jnp.broadcast_to(params["scale"], x.shape), {"calls": state["calls"] + 1}

    return layer("counter", simple_init(lambda key, spec: ({"scale": jnp.ones((spec.shape[-1],))},
                                                           {"calls": jnp.zeros((), jnp.int32)}), apply), apply)


MODEL = serial(Dense(8), Relu, residual(serial(Dense(8), Relu)), parallel(Dense(3), Dense(2)), Counter(), Dense(4))
PATHS = ["dense_0/w", "dense_0/b", "residual_0/body/dense_0/w", "residual_0/body/dense_0/b",
         "parallel_0/dense_0/w", "parallel_0/dense_0/b", "parallel_0/dense_1/w", "parallel_0/dense_1/b",
         "counter_0/scale", "dense_1/w", "dense_1/b"]
TOTAL = (6 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3) + (8 * 2 + 2) + 5 + (5 * 4 + 4)


@pytest.fixture(scope="session")
def built():
    _, params, state = MODEL.init(jax.random.PRNGKey(0), (2, 6))
    return params, state


def test_param_count_and_paths(built):
    params, state = built
    assert tree.param_count(params) == TOTAL
    assert tree.param_count(state) == 1
    assert tree.param_count({}) == 0
    assert sorted(tree.leaf_paths(params)) == sorted(PATHS)
    assert tree.leaf_paths({"a": [jnp.zeros(1), {"b": jnp.zeros(2)}]}) == ["a/0", "a/1/b"]


def test_flatten_unflatten_roundtrip(built):
    params, _ = built
    flat = tree.flatten_dict(params)
    assert list(flat) == PATHS  # model order
    back = tree.unflatten_dict(flat)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    assert all(a is b for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)))


def test_get_and_set_path(built):
    params, _ = built
    assert tree.get_path(params, "parallel_0/dense_1/b").shape == (2,)
    assert tree.get_path(params, ("dense_1", "w")).shape == (5, 4)
    before = jax.tree.map(np.array, params)
    new_w = jnp.full((8, 2), 7.0)
    new = tree.set_path(params, "parallel_0/dense_1/w", new_w)
    assert tree.get_path(new, "parallel_0/dense_1/w") is new_w
    # original untouched: same values and the same leaf objects
    assert tree.get_path(params, "parallel_0/dense_1/w").shape == (8, 2)
    assert not np.allclose(tree.get_path(params, "parallel_0/dense_1/w"), 7.0)
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.array, params))
    # untouched subtrees are shared, containers on the path are copies
    assert new["dense_0"] is params["dense_0"] and new["parallel_0"]["dense_0"] is params["parallel_0"]["dense_0"]
    assert new["parallel_0"] is not params["parallel_0"]
    assert tree.get_path(tree.set_path({"a": [1, (2, 3)]}, "a/1/0", 9), "a/1") == (9, 3)
    with pytest.raises(KeyError, match="dense_9.*dense_0"):
        tree.get_path(params, "parallel_0/dense_9/w")
    with pytest.raises(KeyError, match="leaf"):
        tree.set_path(params, "dense_0/w/x", 1)


def test_path_mask(built):
    params, _ = built
    biases = tree.path_mask(params, "*/b")
    assert {p for p, m in zip(tree.leaf_paths(params), jax.tree.leaves(biases)) if m} == \
           {p for p in PATHS if p.endswith("/b")}
    top = tree.path_mask(params, ["dense_0/*", "counter_0/*"])
    assert {p for p, m in zip(tree.leaf_paths(params), jax.tree.leaves(top)) if m} == \
           {"dense_0/w", "dense_0/b", "counter_0/scale"}
    rx = tree.path_mask(params, r"parallel_0/dense_\d/w", regex=True)
    assert sum(jax.tree.leaves(rx)) == 2
    assert sum(jax.tree.leaves(tree.path_mask(params, "parallel_0", regex=True))) == 0  # whole-path match


def test_freeze_keeps_frozen_leaves_fixed_under_adam(built):
    params, state = built
    tx = tree.freeze(optax.adam(1e-2), ["dense_0/*", "parallel_0/dense_1/w"])
    opt_state = tx.init(params)
    x = jnp.ones((2, 6))

    @jax.jit
    def step(p, o):
        g = jax.grad(lambda p: jnp.sum(MODEL.apply(p, state, x)[0] ** 2))(p)
        with implicit_promotion():   # optax's bias correction promotes implicitly
            u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    new, _ = step(params, opt_state)
    frozen = {"dense_0/w", "dense_0/b", "parallel_0/dense_1/w"}
    for path in PATHS:
        same = np.array_equal(tree.get_path(new, path), tree.get_path(params, path))
        assert same == (path in frozen), path
    with pytest.raises(ValueError, match="dense_7"):
        tree.freeze(optax.sgd(0.1), "dense_7/*").init(params)


def test_summary(built):
    text = tree.summary(MODEL, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 6), jnp.float32))
    assert f"params  {TOTAL:,} " in text and "state   1 " in text
    assert "output  (2, 4) float32" in text and "input   (2, 6) float32" in text
    body = text.split("\n")[3:-5]  # between the header rule and the footer rule
    # one row per layer in model order, nested layers indented under their parent
    rows = [line for line in body if line.strip() and not line.startswith(" " * 20)]  # not leaf continuation rows
    got = [(r[:len(r) - len(r.lstrip())] + r.split()[0], r.split()[1] + " " + r.split()[2]) for r in rows]
    assert got == [("serial", "(2, 4)"), ("  dense_0", "(2, 8)"), ("  relu_0", "(2, 8)"), ("  residual_0", "(2, 8)"),
                   ("    body", "(2, 8)"), ("      dense_0", "(2, 8)"), ("      relu_0", "(2, 8)"),
                   ("    shortcut", "(2, 8)"), ("  parallel_0", "(2, 5)"), ("    dense_0", "(2, 3)"),
                   ("    dense_1", "(2, 2)"), ("  counter_0", "(2, 5)"), ("  dense_1", "(2, 4)")]
    # parameter leaves with shapes; counts per layer (a combinator counts its children)
    assert "w (6, 8) float32" in text and "state calls () int32" in text
    assert rows[8].split()[-1] == f"{(8 * 3 + 3) + (8 * 2 + 2):,}"
    assert rows[0].split()[-1] == f"{TOTAL:,}"
    assert tree.summary(Dense(3), None, (5,)).count("float32") == 5  # row output, w, b; footer input, output


def test_decay_mask_marks_kernels_only():
    import optax
    params = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}, "conv": {"w": jnp.ones((3, 3, 1, 4))},
              "norm": {"scale": jnp.ones((4,))}}
    mask = tree.decay_mask(params)
    assert mask == {"dense": {"w": True, "b": False}, "conv": {"w": True}, "norm": {"scale": False}}
    tx = optax.adamw(1.0, weight_decay=0.5, mask=tree.decay_mask)
    zero = jax.tree.map(jnp.zeros_like, params)
    with implicit_promotion():   # optax's bias correction promotes implicitly
        updates, _ = tx.update(zero, tx.init(params), params)           # zero gradients: the update is the decay
    assert float(jnp.abs(updates["dense"]["b"]).max()) == 0.0 and float(jnp.abs(updates["norm"]["scale"]).max()) == 0.0
    np.testing.assert_allclose(updates["dense"]["w"], -0.5 * params["dense"]["w"])
