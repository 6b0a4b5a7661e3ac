"""Evaluating a function along a line of one leaf (deepcore.gradcheck.line): the same values as forming the
points, no point formed where the leaf is used linearly, and a large check through it still catches a bug."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import Literal

from deepcore.gradcheck import check_grads, kernels
from deepcore.gradcheck.line import along

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 6))
W = rng.standard_normal((6, 5))
V = rng.standard_normal((6, 5))
IMG = rng.standard_normal((2, 7, 7, 3))


def _conv(x, w):   # NHWC input, HWIO kernel
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


FUNCTIONS = {   # name: (f of the leaf, the leaf's shape, whether every use of the leaf is linear)
    "dot": (lambda w: jnp.sum(jnp.tanh(X @ w) ** 2), (6, 5), True),
    "transposed dot": (lambda w: jnp.sum(jnp.sin(w.T @ X.T)), (6, 5), True),
    "reshape, dot": (lambda w: jnp.sum(jnp.tanh(X[:, :3] @ w.reshape(3, 10))), (6, 5), True),
    "jitted layer": (lambda w: jnp.sum(jax.jit(lambda x, w: jnp.tanh(x @ w))(X, w)), (6, 5), True),
    "convolution": (lambda w: jnp.sum(jnp.tanh(_conv(IMG, w))), (3, 3, 3, 4), True),
    "tied weights": (lambda w: jnp.sum(jnp.tanh(X @ w) @ w.T), (6, 5), True),
    "quadratic": (lambda w: jnp.sum(jnp.tanh(w.T @ w)), (6, 5), False),
    "elementwise": (lambda w: jnp.sum(jnp.tanh(w) * w), (6, 5), False),
    "dot and norm": (lambda w: jnp.sum(jnp.tanh(X @ w)) + 0.5 * jnp.sum(w * w), (6, 5), False),
}


def _points_formed(f, t, v):
    """The points ``t + a v`` (additions of the leaf's size that depend on ``a``) in ``a -> along(f, t, v)(a)``."""
    jaxpr = jax.make_jaxpr(lambda a, t, v: along(f, t, v)(a))(0.1, t, v).jaxpr
    tainted, formed = {jaxpr.invars[0]}, 0
    for eqn in jaxpr.eqns:
        if any(x in tainted for x in eqn.invars if not isinstance(x, Literal)):
            tainted.update(eqn.outvars)
            formed += eqn.primitive.name == "add" and eqn.outvars[0].aval.size == t.size
    return formed


@pytest.mark.parametrize("name", FUNCTIONS)
def test_along_a_line_equals_the_function_at_the_formed_points(name):
    f, shape, linear = FUNCTIONS[name]
    with jax.enable_x64(True):
        t, v = (jnp.asarray(rng.standard_normal(shape)) for _ in range(2))
        a = jnp.asarray([1e-3, -2e-3, 0.5, -1.0])
        want = np.array([float(f(t + ai * v)) for ai in a])
        line = jax.jit(lambda t, v: jax.lax.map(along(f, t, v), a))   # in a loop over the stencil, as the kernel
        np.testing.assert_allclose(np.asarray(line(t, v)), want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(jax.vmap(along(f, t, v))(a)), want, rtol=1e-12, atol=1e-14)
        # a finite difference along the line, against the directional derivative
        d = (along(f, t, v)(jnp.asarray(1e-6)) - along(f, t, v)(jnp.asarray(-1e-6))) / 2e-6
        np.testing.assert_allclose(float(d), float(jax.jvp(f, (t,), (v,))[1]), rtol=1e-7)
        # where every use is linear, no point t + a v is formed; a point used twice is formed once
        formed = _points_formed(f, t, v)
        assert (formed == 0) == linear and formed <= (2 if name == "quadratic" else 1)   # w.T and w: two points


def test_where_the_jaxpr_cannot_be_evaluated_again_the_points_are_formed(monkeypatch):
    from deepcore.gradcheck import line

    def broken(*args):
        raise NotImplementedError("an equation of another JAX")

    monkeypatch.setattr(line, "_eval", broken)
    f = FUNCTIONS["dot"][0]
    with jax.enable_x64(True):
        t, v = jnp.asarray(W), jnp.asarray(V)
        np.testing.assert_allclose(float(jax.jit(lambda a: along(f, t, v)(a))(0.5)), float(f(t + 0.5 * v)),
                                   rtol=1e-15)
        assert _points_formed(f, t, v) == 1


def _act_with_bug(column):
    """tanh as a custom_jvp whose derivative is 1.02x too large in one column (the forward is right)."""

    @jax.custom_jvp
    def act(z):
        return jnp.tanh(z)

    @act.defjvp
    def act_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return jnp.tanh(z), (1 - jnp.tanh(z) ** 2) * dz * jnp.ones(z.shape[-1]).at[column].set(1.02)[None]

    return act


@pytest.mark.parametrize("bug", [False, True])
def test_a_check_whose_rows_run_leaf_by_leaf_through_the_line_catches_a_bug_and_passes_without(bug, monkeypatch):
    monkeypatch.setattr(kernels, "ROW_BYTES", 1)   # rows one at a time, as for a 10M-parameter check
    monkeypatch.setattr(kernels, "SHARED_N", 8)    # b1, b2 share a branch; w1, w2 and x each have their own
    act = _act_with_bug(3) if bug else jnp.tanh
    r1 = np.random.default_rng(3)
    params = {"w1": r1.standard_normal((6, 8)) / 3, "b1": np.zeros(8), "w2": r1.standard_normal((8, 2)) / 3,
              "b2": np.zeros(2)}

    def loss(p, x):
        return jnp.sum(jnp.tanh(act(x @ p["w1"] + p["b1"][None]) @ p["w2"] + p["b2"][None]) ** 2)

    with jax.enable_x64(True):
        t, v = jnp.asarray(params["w1"]), jnp.asarray(r1.standard_normal((6, 8)))
        assert _points_formed(lambda w: loss(dict(params, w1=w), X), t, v) == 0   # w1 runs through the line
    r = check_grads(loss, (params, X), (0, 1), argnames=("params", "x"), modes=("fast", "full"), progress=False)
    failed = {f.path for f in r.failures()}
    if not bug:
        assert r.ok, r.table()
        return
    # the bug scales column 3's pre-activation cotangent: w1's column 3, b1[3] and every x element are wrong;
    # w2 and b2 (after the activation) are right
    assert failed == {"params/w1", "params/b1", "x"}, r.table()
    assert r.result("full/rev", "params/w1").where.endswith(",3]")
    assert r.result("full/rev", "params/b1").where == "params/b1[3]"
