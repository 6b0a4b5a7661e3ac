"""Second-order checks of large problems run on the device (directions drawn in a kernel, only maxima returned);
forced here onto small problems, against known Hessians."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.gradcheck import check_grads, second
from test_planted import sin_with_wrong_second_derivative  # the planted table's bug, checked on the device path


@pytest.fixture
def device_path(monkeypatch):
    monkeypatch.setattr(second, "HOST_N", 0)   # every check counts as large

    def host(*a):
        raise AssertionError("the host path ran")
    monkeypatch.setattr(second, "_host", host)


def test_device_second_order_passes_correct_functions_and_matches_the_host_verdicts(device_path):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    A = A + A.T
    w, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))
    quad = lambda p: 0.5 * p["v"] @ (A @ p["v"]) + jnp.sum(jnp.sin(p["v"]))  # noqa: E731
    r = check_grads(quad, ({"v": rng.standard_normal(6)},), modes=("second",), progress=False)
    assert r.ok and {res.mode for res in r.results} == {"second/rr", "second/fr"}
    f = lambda w, x: jnp.sum(jnp.tanh(x @ w) ** 2)  # noqa: E731
    r = check_grads(f, (w, x), (0, 1), modes=("second",), progress=False)
    assert r.ok and len(r.results) == 4 and all(res.max_rel_err < 1e-6 for res in r.results)


def test_device_second_order_catches_a_wrong_second_derivative_at_its_leaves(device_path):
    rng = np.random.default_rng(1)
    W, X, U = rng.standard_normal((4, 3)), rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    sin = sin_with_wrong_second_derivative()
    f = lambda p, x: jnp.sum(sin(x @ p["w"]) * U)  # noqa: E731
    r = check_grads(f, ({"w": W}, X), (0, 1), argnames=("params", "x"), modes=("fast", "second"), progress=False)
    assert {res.mode for res in r.failures()} == {"second/rr", "second/fr"}
    assert {res.path for res in r.failures()} == {"params/w", "x"}


def test_device_second_order_names_the_element_of_a_wrong_hessian_entry(device_path):
    # f = 1/2 v^T A v with a custom JVP whose gradient rule is right but whose own derivative is wrong in one
    # entry: the gradient is (A + E) v for a symmetric perturbation E of entry (2, 4); H v is off in rows 2 and 4
    rng = np.random.default_rng(2)
    A = rng.standard_normal((6, 6))
    A = A + A.T
    E = np.zeros((6, 6))
    E[2, 4] = E[4, 2] = 0.5

    @jax.custom_jvp
    def grad_of(v):
        return A @ v

    @grad_of.defjvp
    def _(primals, tangents):
        (v,), (t,) = primals, tangents
        return A @ v, (A + E) @ t

    @jax.custom_jvp
    def f(v):
        return 0.5 * v @ (A @ v)

    @f.defjvp
    def _(primals, tangents):
        (v,), (t,) = primals, tangents
        return f(v), grad_of(v) @ t

    r = check_grads(f, (rng.standard_normal(6),), modes=("second",), progress=False)
    fails = r.failures()
    assert {res.mode for res in fails} == {"second/rr", "second/fr"}
    assert all(res.where in ("arg0[2]", "arg0[4]") for res in fails)


def test_the_device_paths_stencil_weights_are_the_host_estimates():
    # the device path accumulates R, Rs, fwd, bwd as weighted sums over the stencil (second._weights); they must
    # be finite.estimates, the host path's formulas, term for term
    from deepcore.gradcheck.finite import STENCIL, estimates
    rng = np.random.default_rng(3)
    G, g0, h = rng.standard_normal((len(STENCIL), 7)), rng.standard_normal(7), 1e-3
    w, w0 = second._weights(h)
    host = estimates(G[None], g0, np.array([h]))
    for e in range(4):
        np.testing.assert_allclose(w[e] @ G + w0[e] * g0, host[e][0], rtol=1e-12, atol=1e-9)
