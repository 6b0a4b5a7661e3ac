"""Planted gradient bugs (wrong custom_vjp/custom_jvp rules): each is caught, at the right leaf."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import layer, simple_init
from deepcore.gradcheck import check_grads, check_layer

FIRST = ("fast", "full")
rng = np.random.default_rng(0)
X = rng.standard_normal((4, 6))
W = 0.5 * rng.standard_normal((6, 6))
B = rng.standard_normal(6)
U = rng.standard_normal((4, 6))


def failing(report, modes=None):
    """The leaves (paths) that failed, optionally only in the given modes."""
    return {r.path for r in report.failures() if modes is None or r.mode in modes}


def matmul_with(bug):
    """``x @ w`` as a custom_vjp whose weight gradient has ``bug`` (the input gradient is right)."""

    @jax.custom_vjp
    def mm(x, w):
        return x @ w

    def fwd(x, w):
        return x @ w, (x, w)

    def bwd(res, g):
        x, w = res
        return g @ w.T, bug(x, g, x.T @ g)

    mm.defvjp(fwd, bwd)
    return mm


def dense_loss(mm):
    return lambda p, x: jnp.sum(jnp.tanh(mm(x, p["w"]) + p["b"][None, :]) * U[: x.shape[0]])


def check_dense(bug, x=X, w=W, **kw):
    return check_grads(dense_loss(matmul_with(bug)), ({"w": w, "b": B}, x), (0, 1), argnames=("params", "x"),
                       modes=FIRST, **kw)


@pytest.mark.parametrize("factor", [1.01, 1.0001])
def test_scaled_weight_gradient(factor):
    r = check_dense(lambda x, g, dw: factor * dw)
    assert failing(r) == {"params/w"}
    assert r.result("fast/rev", "params/w").max_rel_err > 0.5 * (factor - 1)


def test_one_element_wrong_out_of_10000():
    x = rng.standard_normal((3, 100))
    w = 0.1 * rng.standard_normal((100, 100))
    u = rng.standard_normal((3, 100))
    mm = matmul_with(lambda x, g, dw: dw.at[37, 59].add(0.5))
    f = lambda p, x: jnp.sum(jnp.tanh(mm(x, p["w"])) * u)  # noqa: E731
    r = check_grads(f, ({"w": w}, x), (0, 1), argnames=("params", "x"), modes=("fast",))
    assert failing(r) == {"params/w"}
    assert r.result("fast/rev", "params/w").where == "params/w[37,59]"   # bisection finds the element


def test_transposed_weight_gradient():
    r = check_dense(lambda x, g, dw: dw.T)
    assert failing(r) == {"params/w"}
    i, j = (int(s) for s in r.result("full/rev", "params/w").where[len("params/w["):-1].split(","))
    assert i != j   # the diagonal of a transposed gradient is right


def test_gradient_right_only_for_batch_size_1():
    bug = lambda x, g, dw: x.shape[0] * (x[:1].T @ g[:1])  # noqa: E731
    assert check_dense(bug, x=X[:1]).ok
    assert failing(check_dense(bug)) == {"params/w"}


def test_wrong_bias_gradient_only():
    @jax.custom_vjp
    def affine(x, w, b):
        return x @ w + b[None, :]

    affine.defvjp(lambda x, w, b: (x @ w + b[None, :], (x, w)),
                  lambda res, g: (g @ res[1].T, res[0].T @ g, 2.0 * g.sum(0)))
    f = lambda p, x: jnp.sum(jnp.tanh(affine(x, p["w"], p["b"])) * U)  # noqa: E731
    r = check_grads(f, ({"w": W, "b": B}, X), (0, 1), argnames=("params", "x"), modes=FIRST)
    assert failing(r) == {"params/b"}


def test_sign_flipped_on_one_branch():
    @jax.custom_jvp
    def piecewise(x):
        return jnp.where(x > 0, x ** 2, jnp.sin(x))

    @piecewise.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return piecewise(x), jnp.where(x > 0, 2 * x, -jnp.cos(x)) * t   # should be +cos(x)

    r = check_grads(lambda x: jnp.sum(piecewise(x) * U), X, modes=FIRST)
    assert failing(r) == {"arg0"}
    worst = r.result("full/rev", "arg0").where
    assert X[tuple(int(s) for s in worst[len("arg0["):-1].split(","))] < 0   # the wrong branch


def test_missing_product_rule_term():
    @jax.custom_jvp
    def prod(a, b):
        return a * b

    @prod.defjvp
    def _(primals, tangents):
        (a, b), (ta, tb) = primals, tangents
        return a * b, ta * b   # forgot a * tb

    r = check_grads(lambda a, b: jnp.sum(jnp.sin(prod(a, b)) * U), (X, U + 1.0), (0, 1), argnames=("a", "b"),
                    modes=FIRST + ("fwd-rev",))
    assert failing(r) == {"b"}


def test_correct_vjp_wrong_jvp():
    """A rule with separate forward- and reverse-mode code paths (reverse mode linearises it)."""

    @jax.custom_jvp
    def sin(x):
        return jnp.sin(x)

    @sin.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        reverse = type(t).__name__ == "JaxprTracer"
        return jnp.sin(x), (1.0 if reverse else 1.01) * jnp.cos(x) * t

    r = check_grads(lambda x: jnp.sum(sin(x) * U), X, modes=FIRST + ("fwd-rev",))
    modes = {res.mode for res in r.failures()}
    assert modes == {"fast/fwd", "full/fwd", "fwd-rev"}   # reverse mode is right
    assert failing(r) == {"arg0"}


def sin_with_wrong_second_derivative():
    """``sin`` whose first derivative is right and whose second is wrong (``d cos = +sin``)."""
    @jax.custom_jvp
    def dsin(x):
        return jnp.cos(x)

    @dsin.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return jnp.cos(x), jnp.sin(x) * t   # should be -sin(x)

    @jax.custom_jvp
    def sin(x):
        return jnp.sin(x)

    @sin.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return jnp.sin(x), dsin(x) * t

    return sin


def test_correct_first_wrong_second_derivative():
    sin = sin_with_wrong_second_derivative()
    f = lambda p, x: jnp.sum(sin(x @ p["w"]) * U)  # noqa: E731
    r = check_grads(f, ({"w": W}, X), (0, 1), argnames=("params", "x"), modes=FIRST + ("second",))
    assert {res.mode for res in r.failures()} == {"second/rr", "second/fr"}
    assert failing(r) == {"params/w", "x"}


def test_stop_gradient_in_the_wrong_place():
    def normalise(p, x):   # layer norm whose mean was wrapped in stop_gradient
        mu = jax.lax.stop_gradient(x.mean(-1, keepdims=True))
        y = (x - mu) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5)
        return jnp.sum(jnp.tanh(p["scale"][None, :] * y) * U)

    r = check_grads(normalise, ({"scale": B}, X), (0, 1), argnames=("params", "x"), modes=FIRST)
    assert failing(r) == {"x"}


def test_dropout_backward_with_a_different_mask():
    def bad_dropout(rate):
        @jax.custom_vjp
        def drop(x, key):
            keep = jax.random.bernoulli(key, 1 - rate, x.shape)
            return jnp.where(keep, x / (1 - rate), 0.0)

        def fwd(x, key):
            return drop(x, key), key

        def bwd(key, g):
            keep = jax.random.bernoulli(jax.random.fold_in(key, 1), 1 - rate, g.shape)   # another mask
            return jnp.where(keep, g / (1 - rate), 0.0), None

        drop.defvjp(fwd, bwd)

        def apply(params, state, x, *, key=None, train=False):
            return (drop(x, key) if train else x), state

        return layer("dropout", simple_init(lambda key, spec: ({}, {}), apply), apply)

    r = check_layer(bad_dropout(0.5), (4, 6), modes=FIRST)
    assert {(res.mode, res.path) for res in r.failures()} == {("train fast/rev", "x"), ("train full/rev", "x")}


def test_failures_say_where_in_the_table():
    r = check_dense(lambda x, g, dw: 1.01 * dw)
    assert "fail" in r.table() and "params/w[" in r.table()
    with pytest.raises(AssertionError, match="params/w"):
        from deepcore.gradcheck import assert_grads_ok
        assert_grads_ok(dense_loss(matmul_with(lambda x, g, dw: 1.01 * dw)), ({"w": W, "b": B}, X), (0, 1),
                        argnames=("params", "x"), modes=("fast",))
