"""The checker's compile rule and its row loop: what is compiled how, and that neither changes a number."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.gradcheck import compiling
from deepcore.gradcheck.problem import Problem


def test_small_programs_compile_fast_large_ones_with_defaults_same_values(monkeypatch):
    monkeypatch.setattr(compiling, "ENABLED", True)   # the default (DEEPCORE_GRADCHECK_FAST_COMPILE=0: off)
    with jax.enable_x64(True):
        x = np.random.default_rng(0).standard_normal((6, 5))
        small = lambda a: jnp.tanh(a @ a.T).sum(axis=0)  # noqa: E731
        before = dict(compiling.COUNTS)
        y = compiling.jit(small)(x)
        assert compiling.COUNTS["fast"] == before.get("fast", 0) + 1
        np.testing.assert_allclose(np.asarray(y), np.tanh(x @ x.T).sum(axis=0), rtol=1e-13)
        big = np.ones((1000, 1000))   # 2e9 flops: above the rule's threshold
        before = dict(compiling.COUNTS)
        z = compiling.jit(lambda a: a @ a)(big)
        assert float(z[0, 0]) == 1000.0
        compiling.jit(small, n=compiling.SMALL_N)(x)   # a small program of a check of many numbers
        assert compiling.COUNTS["default"] == before.get("default", 0) + 2
        f = compiling.jit(small)
        f(x), f(x + 1)   # one signature, one compile
        assert compiling.COUNTS["fast"] == before.get("fast", 0) + 1
    monkeypatch.setattr(compiling, "ENABLED", False)   # switched off: XLA's own options
    before = dict(compiling.COUNTS)
    compiling.jit(lambda a: jnp.cos(a).sum())(x)
    assert compiling.COUNTS["default"] == before.get("default", 0) + 1


def test_a_call_with_fewer_rows_than_compiled_gives_the_same_rows_without_a_compile():
    f = lambda w, x: jnp.sum(jnp.sin(x @ w) ** 2)  # noqa: E731
    rng = np.random.default_rng(1)
    args = (rng.standard_normal((4, 3)), rng.standard_normal((5, 4)))
    with jax.enable_x64(True):
        P = Problem(f, args, (0, 1), ("w", "x"), False, jnp.float64, np.random.default_rng(0))
        seeds = np.arange(1, 11, dtype=np.uint32)
        lo, hi = np.zeros(10, np.int64), np.full(10, P.n)
        hs = np.full(10, 1e-3)
        F, vg, jv, f0, g = P.directional(P.theta0, seeds, lo, hi, hs)
        compiled = dict(compiling.COUNTS)
        F3, vg3, jv3, f03, g3 = P.directional(P.theta0, seeds[:3], lo[:3], hi[:3], hs[:3])
        assert dict(compiling.COUNTS) == compiled and P.sizes == {12}   # 10 rows rounded up to whole groups
        np.testing.assert_array_equal(F3, F[:3])
        np.testing.assert_array_equal(vg3, vg[:3])
        np.testing.assert_array_equal(jv3, jv[:3])
        assert f03 == f0 == float(np.sum(np.sin(args[1] @ args[0]) ** 2))
        w, x = args   # the gradient against numpy's: d/dw = x^T (2 sin cos), d/dx = (2 sin cos) w^T
        s = 2 * np.sin(x @ w) * np.cos(x @ w)
        np.testing.assert_allclose(g, np.concatenate([(x.T @ s).ravel(), (s @ w.T).ravel()]), rtol=1e-12)


def test_leafwise_rows_and_host_drawn_rows_give_the_same_numbers(monkeypatch):
    from deepcore.gradcheck import kernels
    from deepcore.gradcheck.kernels import host_directions
    rng = np.random.default_rng(2)
    args = (rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((5, 4)))
    sizes = [12, 3, 20]
    starts = np.cumsum([0] + sizes[:-1])
    # rows: each leaf whole, single elements, half a leaf (fast mode, full mode, bisection)
    lo = np.array([*starts, 0, 13, 14, 30, 15, 25], np.int64)
    hi = np.array([*(starts + sizes), 1, 14, 15, 31, 25, 35], np.int64)
    seeds = np.arange(7, 7 + len(lo), dtype=np.uint32)
    hs = np.full(len(lo), 1e-3)
    out = {}
    with jax.enable_x64(True):
        for rows_at_once in (True, False):
            if not rows_at_once:   # as for a 10M-parameter check: rows one at a time, through the leafwise switch
                monkeypatch.setattr(kernels, "ROW_BYTES", 1)
                monkeypatch.setattr(kernels, "SHARED_N", 15)   # w (12) and b (3) share a branch, x (20) has its own
            f = lambda w, b, x: jnp.sum(jnp.sin(x @ w + b[None]) ** 2)  # noqa: E731  (new function: new kernels)
            P = Problem(f, args, (0, 1, 2), ("w", "b", "x"), False, jnp.float64, np.random.default_rng(0))
            assert P.k.leafwise(True) is not rows_at_once and P.k.host(True) is rows_at_once
            out[rows_at_once] = P.directional(P.theta0, seeds, lo, hi, hs)
            kernel = P.k._directional(True, True, True)
            if rows_at_once:   # a small check: directions come from the host, no hash in the program
                t = P.k.split(jnp.asarray(P.theta0))
                dirs = host_directions(seeds, lo, hi, P.n, np.float64)
                jaxpr = str(jax.make_jaxpr(kernel)(t, (0.0, t), True, P.consts, P.u, seeds, lo, hi, hs, 3, dirs))
                assert "shift_right_logical" not in jaxpr
            else:
                t = P.k.split(jnp.asarray(P.theta0))
                jaxpr = jax.make_jaxpr(kernel)(t, (0.0, t), True, P.consts, P.u, seeds, lo, hi, hs, 3)
                assert kernels.small_leaves(P.layout) == [0, 1]
                assert 2 in _branch_counts(jaxpr.jaxpr)   # the row is a switch: x's branch and the shared one
                with pytest.raises(ValueError, match="spans leaves"):
                    P.directional(P.theta0, seeds[:1], lo[:1], hi[2:3], hs[:1])
    for a, b in zip(out[True], out[False]):
        if isinstance(a, float):
            assert a == b
        else:
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    # against numpy: <g, v> along each leaf's own direction is the leaf's gradient slice's projection
    F, vg = out[False][0], out[False][1]
    np.testing.assert_allclose(vg, (F[:, 0] - F[:, 1]) / 2e-3, rtol=1e-5)


def _branch_counts(jaxpr):
    """The branch counts of every cond/switch in ``jaxpr``, nested ones included."""
    counts = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            counts.append(len(eqn.params["branches"]))
        for v in eqn.params.values():
            for j in (v if isinstance(v, (tuple, list)) else (v,)):
                inner = getattr(j, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    counts += _branch_counts(inner)
                elif hasattr(j, "eqns"):
                    counts += _branch_counts(j)
    return counts


def test_host_directions_are_the_kernels_directions():
    from deepcore.gradcheck.kernels import direction, host_directions
    layout = [(0, (3, 4)), (12, (5,)), (17, (2, 2, 2))]
    seeds = np.array([0, 1, 2 ** 31 + 5, 2 ** 32 - 1], np.uint32)
    lo, hi = np.array([0, 12, 3, 0]), np.array([12, 17, 20, 25])
    for dtype, rtol in ((np.float32, 1e-6), (np.float64, 1e-14)):
        with jax.enable_x64(dtype == np.float64):
            host = host_directions(seeds, lo, hi, 25, dtype)
            assert host.dtype == dtype and host.shape == (4, 25)
            for r in range(4):
                v = direction(jnp.uint32(seeds[r]), jnp.asarray(lo[r]), jnp.asarray(hi[r]), layout, dtype)
                kernel = np.concatenate([np.asarray(a).ravel() for a in v])
                np.testing.assert_allclose(host[r], kernel, rtol=rtol, atol=rtol * 1e-2)
                assert np.all(host[r][:lo[r]] == 0) and np.all(host[r][hi[r]:] == 0)
            np.testing.assert_allclose(np.linalg.norm(host.astype(np.float64), axis=1), 1.0, rtol=rtol * 10)


def test_a_conv_net_kernel_gives_the_same_rows_compiled_fast_and_with_xla_defaults(monkeypatch):
    # the fast options (no LLVM optimisation, XLA's older fusion emitter) must not change a number beyond
    # rounding: every output of the directional kernel of a small conv net (grouped convolutions under vmap,
    # reductions, the gradient, the JVP), compiled both ways, and the gradient against a plain jax.grad
    def f(w, b, x):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(jnp.tanh(y + b[None, None, None]) ** 2) + jnp.max(y)

    rng = np.random.default_rng(3)
    args = (rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4), rng.standard_normal((2, 6, 6, 2)))
    out = {}
    with jax.enable_x64(True):
        for fast in (True, False):
            monkeypatch.setattr(compiling, "ENABLED", fast)
            g = lambda w, b, x: f(w, b, x)  # noqa: E731  (new function: new kernels)
            P = Problem(g, args, (0, 1, 2), ("w", "b", "x"), False, jnp.float64, np.random.default_rng(0))
            before = dict(compiling.COUNTS)
            m = 12
            out[fast] = P.directional(P.theta0, np.arange(m, dtype=np.uint32), np.zeros(m, np.int64),
                                      np.full(m, P.n), np.full(m, 1e-3))
            assert compiling.COUNTS["fast" if fast else "default"] == before.get("fast" if fast else "default", 0) + 1
        reference = np.concatenate([np.asarray(a).ravel() for a in jax.grad(f, argnums=(0, 1, 2))(*args)])
    for a, b in zip(out[True], out[False]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[True][4], reference, rtol=1e-12, atol=1e-12)


def test_a_large_program_is_optimised_even_where_xla_flags_make_the_fast_options_the_default(monkeypatch):
    # the CLI's workers start with the fast options in XLA_FLAGS; the rule still gives a program above its
    # thresholds XLA's own optimisation, explicitly, so a worker never runs a large program unoptimised
    monkeypatch.setattr(compiling, "ENABLED", True)
    with jax.enable_x64(True):
        small = jax.jit(lambda a: jnp.tanh(a) @ a).lower(np.ones((8, 8)))
        big = jax.jit(lambda a: jnp.tanh(a) @ a).lower(np.ones((1000, 1000)))
        assert compiling.options_for(small) == compiling.FAST_COMPILE
        assert compiling.options_for(big) == compiling.FULL_COMPILE
        assert compiling.options_for(small, n=compiling.SMALL_N) == compiling.FULL_COMPILE
        assert compiling.FULL_COMPILE["xla_backend_optimization_level"] > 0
        assert compiling.FULL_COMPILE["xla_cpu_use_fusion_emitters"] is True
    monkeypatch.setattr(compiling, "ENABLED", False)
    assert compiling.options_for(small) == {}


def test_a_call_that_touches_few_numbers_compiles_fast_and_a_larger_one_gets_a_full_executable(monkeypatch):
    # the leafwise kernel of a large check says how many numbers its rows touch: under SMALL_WORK it is compiled
    # the fast way whatever the check's size; a later call touching more gets XLA's defaults, and once that
    # executable exists every call of the signature uses it
    monkeypatch.setattr(compiling, "ENABLED", True)
    with jax.enable_x64(True):
        lowered = jax.jit(lambda a: jnp.tanh(a).sum()).lower(np.ones(8))
        big_n = compiling.SMALL_N
        assert compiling.options_for(lowered, big_n) == compiling.FULL_COMPILE
        fast = compiling.options_for(lowered, big_n, work=compiling.SMALL_WORK - 1)
        assert fast == dict(compiling.FAST_COMPILE, **compiling.parallel()) and compiling.is_fast(fast)
        assert compiling.options_for(lowered, big_n, work=compiling.SMALL_WORK) == compiling.FULL_COMPILE
        f = compiling.jit(lambda a: jnp.tanh(a).sum(), n=big_n)
        x = np.linspace(0.0, 1.0, 8)
        counts = []
        for work in (10, 10, compiling.SMALL_WORK, 10, None):
            before = dict(compiling.COUNTS)
            assert float(f(x, work=work)) == pytest.approx(float(np.tanh(x).sum()), rel=1e-14)
            counts.append({k: compiling.COUNTS[k] - before.get(k, 0) for k in ("fast", "default")})
        assert counts == [{"fast": 1, "default": 0}, {"fast": 0, "default": 0}, {"fast": 0, "default": 1},
                          {"fast": 0, "default": 0}, {"fast": 0, "default": 0}]


def test_a_large_checks_fast_kernel_splits_its_code_generation_over_the_cores(monkeypatch):
    # only the leafwise kernel of a large check (one model copy per large leaf) is split; a small check's
    # programs stay whole, and so does everything on a one-core machine
    monkeypatch.setattr(compiling, "ENABLED", True)
    split = "xla_cpu_parallel_codegen_split_count"
    for cores, want in ((1, None), (2, 2), (64, compiling.MAX_SPLIT)):
        monkeypatch.setattr(compiling.os, "sched_getaffinity", lambda pid, c=cores: set(range(c)))
        assert compiling.parallel().get(split) == want
        with jax.enable_x64(True):
            lowered = jax.jit(lambda a: jnp.tanh(a).sum()).lower(np.ones(8))
            large = compiling.options_for(lowered, compiling.SMALL_N, work=10)
            assert compiling.is_fast(large) and large.get(split) == want
            assert split not in compiling.options_for(lowered, compiling.SMALL_N - 1, work=10)
            assert split not in compiling.options_for(lowered, compiling.SMALL_N, work=compiling.SMALL_WORK)


def test_leafwise_rows_are_the_same_compiled_fast_and_with_xla_defaults_and_their_work_is_counted(monkeypatch):
    from deepcore.gradcheck import kernels
    monkeypatch.setattr(compiling, "ENABLED", True)
    monkeypatch.setattr(kernels, "ROW_BYTES", 1)      # rows one at a time, as for a 10M-parameter check
    monkeypatch.setattr(kernels, "SHARED_N", 15)      # w (12) and b (3) share a branch, x (20) has its own
    monkeypatch.setattr(compiling, "SMALL_N", 0)      # the check counts as large: only its work can make it fast
    rng = np.random.default_rng(4)
    args = (rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((5, 4)))
    lo, hi = np.array([0, 12, 15, 3, 20], np.int64), np.array([12, 15, 35, 4, 30], np.int64)
    seeds, hs = np.arange(5, dtype=np.uint32), np.full(5, 1e-3)
    out = {}
    with jax.enable_x64(True):
        for work_limit in (10 ** 6, 0):   # fast, then XLA's defaults
            monkeypatch.setattr(compiling, "SMALL_WORK", work_limit)
            f = lambda w, b, x: jnp.sum(jnp.tanh(x @ w + b[None]) ** 2)  # noqa: E731  (new function: new kernels)
            P = Problem(f, args, (0, 1, 2), ("w", "b", "x"), False, jnp.float64, np.random.default_rng(0))
            assert P.k.leafwise(True) and P.k.work(lo, True) == 15 + 15 + 20 + 15 + 20
            before = dict(compiling.COUNTS)
            out[work_limit] = P.directional(P.theta0, seeds, lo, hi, hs)
            kind = "fast" if work_limit else "default"
            assert compiling.COUNTS[kind] == before.get(kind, 0) + 1
    for a, b in zip(out[10 ** 6], out[0]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
