"""The flat vector held as leaves: views inside a leaf, the whole vector only on request, same numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.gradcheck import check_grads
from deepcore.gradcheck.flat import Flat, norm
from deepcore.gradcheck.problem import Problem


def _flat():
    rng = np.random.default_rng(0)
    leaves = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal(())]
    layout = [(0, (3, 4)), (12, (5,)), (17, ())]
    return Flat(layout, [a.ravel() for a in leaves]), np.concatenate([a.ravel() for a in leaves])


def test_slices_inside_a_leaf_are_views_and_anything_else_indexes_the_whole():
    F, whole = _flat()
    assert len(F) == 18 and F.shape == (18,)
    for sl in (slice(0, 12), slice(12, 17), slice(17, 18), slice(3, 7), slice(13, 14), slice(5, 5)):
        part = F[sl]
        np.testing.assert_array_equal(part, whole[sl])
        if part.size:
            assert any(np.shares_memory(part, p) for p in F.parts)   # a view, no copy
    assert F._whole is None   # nothing asked for the whole vector yet
    np.testing.assert_array_equal(F[10:14], whole[10:14])   # across leaves
    np.testing.assert_array_equal(F[np.array([0, 17])], whole[[0, 17]])
    np.testing.assert_array_equal(np.asarray(F), whole)
    np.testing.assert_array_equal(np.array(F, np.float32), whole.astype(np.float32))
    assert abs(norm(F) - np.linalg.norm(whole)) <= 1e-14 * np.linalg.norm(whole)
    moved = np.array(F)   # a copy (a kink move writes into it): the vector itself must not change
    moved[0] = 99.0
    assert np.asarray(F)[0] == whole[0] and F[0:1][0] == whole[0]
    with pytest.raises(ValueError):
        np.asarray(F)[0] = 99.0   # the kept whole vector is read-only
    assert norm(whole) == np.linalg.norm(whole)


def test_a_fast_check_builds_no_whole_vector_and_its_gradient_is_right():
    rng = np.random.default_rng(1)
    args = (rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((5, 4)))

    def f(w, b, x):
        return jnp.sum(jnp.sin(x @ w + b[None]) ** 2)

    with jax.enable_x64(True):
        P = Problem(f, args, (0, 1, 2), ("w", "b", "x"), False, jnp.float64, np.random.default_rng(0))
        assert isinstance(P.theta0, Flat) and P.theta0.device is not None
        seeds = np.arange(3, dtype=np.uint32)
        lo, hi = np.array([0, 12, 15]), np.array([12, 15, 35])
        _, _, _, f0, g = P.directional(P.theta0, seeds, lo, hi, np.full(3, 1e-3))
        assert isinstance(g, Flat) and P.theta0._whole is None and g._whole is None
        w, b, x = args   # against numpy
        s = 2 * np.sin(x @ w + b) * np.cos(x @ w + b)
        np.testing.assert_allclose(np.asarray(g), np.concatenate([(x.T @ s).ravel(), s.sum(0), (s @ w.T).ravel()]),
                                   rtol=1e-12)
        assert abs(f0 - float(np.sum(np.sin(x @ w + b) ** 2))) <= 1e-14
    report = check_grads(f, args, (0, 1, 2), modes=("fast", "fwd-rev"), progress=False)
    assert report.ok and len(report.results) == 3 * 3


def test_moving_off_a_kink_leaves_the_checked_point_unchanged():
    # fast mode moves a leaf that sits on a kink (relu at 0) with np.array(t) and writes into it: theta0 (a Flat)
    # must keep its own numbers for the modes after it
    from deepcore.gradcheck import modes as M
    x = np.array([[0.0, 1.0, -2.0], [0.5, 0.0, 3.0]])
    w = np.array([0.3, -0.7, 1.1])
    f = lambda w, x: jnp.sum(jax.nn.relu(x) * w[None])  # noqa: E731
    with jax.enable_x64(True):
        P = Problem(f, (w, x), (0, 1), ("w", "x"), False, jnp.float64, np.random.default_rng(0))
        before = np.concatenate([w, x.ravel()])
        np.testing.assert_array_equal(np.asarray(P.theta0), before)
        res, runs = M.first_order(P, P.theta0, "fast", "float64", k=4, coords={}, max_moves=3)
        assert runs["x"].kinks > 0 and runs["x"].t is not P.theta0   # x sat on a kink and was moved
        np.testing.assert_array_equal(np.asarray(P.theta0), before)
        np.testing.assert_array_equal(P.theta0[3:9], x.ravel())
