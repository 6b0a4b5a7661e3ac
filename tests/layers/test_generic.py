"""Checks every layer in ``deepcore.catalog.LAYER_CASES`` gets: specs, jit, vmap, dtypes, gradients, keys.

A layer added to the catalog is tested here with no new code. Cases tagged ``axis_name=NAME`` (BatchNorm
with a named batch axis) run their batched train-mode calls inside a size-1 ``vmap`` that binds ``NAME``.

Compile cost decides this module's runtime, so each case compiles one float32 function that computes
everything the float32/bfloat16 checks read (eval and train outputs, bfloat16 outputs, the per-example
vmap, gradients), one float64 forward, and the float64 gradient check's kernels. Each case's tests form
one xdist group so a case is built and compiled on one worker only.
"""
import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.catalog import LAYER_CASES
from deepcore.core import cast
from deepcore.gradcheck import check_case
from deepcore.gradcheck.report import PASS

CASES = {c.name: c for c in LAYER_CASES}
assert len(CASES) == len(LAYER_CASES), "catalog case names must be unique"
NAMES = list(CASES)
KEY = jax.random.PRNGKey(0)
CALL_KEY = jax.random.PRNGKey(1)


@pytest.fixture(autouse=True, scope="module")
def quick_backend_compiles():
    """This module's cost is compiling hundreds of small functions; XLA's CPU backend at optimisation level 0
    (``jax_disable_most_optimizations``: the same HLO, no expensive LLVM passes) compiles them in about half
    the time. Restored afterwards: other modules run in the same xdist worker."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


@contextlib.contextmanager
def backend_optimizations():
    """Full XLA backend optimisation inside the block (for code that runs, not just compiles, its kernels)."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", old)


def cases(pred=lambda case: True):
    """Parameters for the cases that satisfy ``pred``, each in its case's xdist group."""
    return [pytest.param(n, marks=pytest.mark.xdist_group(f"generic_{n}")) for n in NAMES if pred(CASES[n])]


def axis_name(case):
    for t in case.tags:
        if t.startswith("axis_name="):
            return t.split("=", 1)[1]
    return None


def call(case, lay, params, state, x, *, train, key=CALL_KEY):
    """``lay.apply`` on a batch, binding the case's named axis (size 1) when it has one."""
    name = axis_name(case)
    if name is None or not train:
        return lay.apply(params, state, x, key=key, train=train)
    out = jax.vmap(lambda _: lay.apply(params, state, x, key=key, train=train), axis_name=name)(jnp.zeros(1))
    return jax.tree.map(lambda a: a[0], out)


def abstract_init(lay, spec):
    """``(out_spec, params, state)`` of ``lay.init`` as shapes and dtypes only (nothing computed or compiled)."""
    box = {}

    def init(key):
        box["spec"], params, state = lay.init(key, spec)
        return params, state

    params, state = jax.eval_shape(init, KEY)
    return box["spec"], params, state


@functools.lru_cache(maxsize=None)
def built(name):
    """``(layer, out_spec, params, state, x)`` for a case in float32, built once per module."""
    case = CASES[name]
    lay = case.make()
    spec, params, state = lay.init(KEY, case.spec())
    return lay, spec, params, state, case.input(jax.random.PRNGKey(2))


def loss_fn(case, lay, cotangent):
    """A scalar of (params, state, x): the train-mode output against a fixed random cotangent."""

    def loss(params, state, x):
        y, _ = call(case, lay, params, state, x, train=True)
        return sum(jnp.vdot(a, c.astype(a.dtype)) for a, c in zip(jax.tree.leaves(y), jax.tree.leaves(cotangent)))

    return loss


def cotangent_for(spec, dtype=jnp.float32):
    leaves = jax.tree.leaves(spec)
    keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
    return [jax.random.normal(k, s.shape, dtype) for k, s in zip(keys, leaves)]


def vmap_trains(case):
    return (False,) if case.stochastic else (False, True)


def everything32(case, lay, spec):
    """``(params, state, x, key) -> dict`` of all float32/bfloat16 quantities the checks compare:
    ``f32[train] = (y, state)``, ``bf16[train] = y`` (float inputs), ``vmap[train] = (y, state)`` of the
    single-example apply vmapped over the batch axis (per-example cases), ``grads`` of the train-mode loss
    with respect to the parameters (and the input, for float inputs)."""
    loss = loss_fn(case, lay, cotangent_for(spec))

    def f(params, state, x, key):
        out = {"f32": {t: call(case, lay, params, state, x, train=t, key=key) for t in (False, True)}}
        if not case.int_max:
            xb = x.astype(jnp.bfloat16)
            out["bf16"] = {t: call(case, lay, params, state, xb, train=t, key=key)[0] for t in (False, True)}
        if case.batch_axis is not None:
            ax = case.batch_axis
            out["vmap"] = {t: jax.vmap(lambda xi, t=t: lay.apply(params, state, xi, key=key, train=t),
                                       in_axes=ax, out_axes=(ax, 0), axis_name=axis_name(case))(x)
                           for t in vmap_trains(case)}
        out["grads"] = jax.grad(loss, argnums=(0,) if case.int_max else (0, 2))(params, state, x)
        return out

    return f


@functools.lru_cache(maxsize=None)
def compiled32(name):
    """:func:`everything32` jitted: the one float32 compile of a case, shared by the tests below."""
    case = CASES[name]
    lay, spec = built(name)[:2]
    return jax.jit(everything32(case, lay, spec))


@functools.lru_cache(maxsize=None)
def results32(name, key_seed=None):
    lay, spec, params, state, x = built(name)
    key = CALL_KEY if key_seed is None else jax.random.PRNGKey(key_seed)
    return compiled32(name)(params, state, x, key)


def assert_close(a, b, rtol, atol, what=""):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64),
                                                         rtol=rtol, atol=atol, err_msg=what), a, b)


def assert_matches_spec(y, spec):
    assert jax.tree.structure(y) == jax.tree.structure(spec)
    for a, s in zip(jax.tree.leaves(y), jax.tree.leaves(spec)):
        assert (a.shape, a.dtype) == (s.shape, s.dtype), f"apply gave {a.shape} {a.dtype}, init said {s}"


def same_layout(s1, s2):
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)


@pytest.mark.parametrize("name", cases())
def test_init_spec_matches_apply_output(name):
    lay, spec, params, state, x = built(name)
    outs = results32(name)["f32"]
    for train in (False, True):
        y, new_state = outs[train]
        assert_matches_spec(y, spec)
        same_layout(new_state, state)
        if not train:
            assert_close(new_state, state, 0, 0, "eval mode must leave the state unchanged")


@pytest.mark.parametrize("name", cases())
def test_jit_matches_eager_without_leaks(name):
    case = CASES[name]
    lay, spec, params, state, x = built(name)
    with jax.checking_leaks():  # every trace of the case (outputs, bfloat16, vmap, gradients) leaks no tracer
        jax.eval_shape(everything32(case, lay, spec), params, state, x, CALL_KEY)
    y_jit = results32(name)["f32"][True]
    assert_close(y_jit, call(case, lay, params, state, x, train=True), 1e-5, 1e-5)


@pytest.mark.parametrize("name", cases(lambda c: c.batch_axis is not None))
def test_vmap_of_single_example_matches_batched(name):
    case = CASES[name]
    res = results32(name)
    for train in vmap_trains(case):
        (y_v, s_v), (y_b, s_b) = res["vmap"][train], res["f32"][train]
        assert_close(y_v, y_b, 1e-5, 1e-5, f"train={train}")
        # per-example state (e.g. running statistics from a pmean) must equal the batched state for every example
        assert_close(s_v, jax.tree.map(lambda a, b: jnp.broadcast_to(a, b.shape), s_b, s_v), 1e-5, 1e-5)


@functools.lru_cache(maxsize=None)
def forward64(name):
    """A jitted ``(params, state, x, key) -> {False: eval (y, state), True: train (y, state)}`` (float64)."""
    case, lay = CASES[name], built(name)[0]
    return jax.jit(lambda p, s, x, k: {t: call(case, lay, p, s, x, train=t, key=k) for t in (False, True)})


@pytest.mark.parametrize("name", cases())
def test_float64_end_to_end(name):
    case = CASES[name]
    lay, _, params32, state32, x32 = built(name)
    outs32 = results32(name)["f32"]
    with jax.enable_x64(True):
        spec, p64, s64 = abstract_init(lay, case.spec(jnp.float64))
        if not case.int_max:  # integer inputs give no float dtype to follow: those parameters are cast below
            for leaf in jax.tree.leaves((p64, s64)):
                assert leaf.dtype == jnp.float64
        # the float32 build's weights in float64 give the float32 answer to float32 precision
        params, state = cast(params32, jnp.float64), cast(state32, jnp.float64)
        x = x32 if case.int_max else x32.astype(jnp.float64)
        outs = forward64(name)(params, state, x, CALL_KEY)
        for train in (False, True):
            y = outs[train][0]
            for leaf in jax.tree.leaves(y):
                assert leaf.dtype == jnp.float64
            if not (train and case.stochastic):  # random bits differ between 32- and 64-bit modes
                assert_close(outs32[train][0], y, 1e-4, 1e-4, f"train={train}")
        if not case.int_max:
            assert_matches_spec(y, spec)


@pytest.mark.parametrize("name", cases(lambda c: not c.int_max))
def test_bfloat16_compute_with_float32_params(name):
    case = CASES[name]
    lay = built(name)[0]
    spec, p16, s16 = abstract_init(lay, case.spec(jnp.bfloat16))
    for leaf in jax.tree.leaves((p16, s16)):
        assert leaf.dtype == jnp.float32, "bfloat16 inputs keep float32 master parameters"
    res = results32(name)
    for train in (False, True):
        y, y32 = res["bf16"][train], res["f32"][train][0]
        for leaf in jax.tree.leaves(y):
            assert leaf.dtype == jnp.bfloat16
        # bfloat16 keeps 8 significant bits (relative step 2**-8 ~ 0.4%); a few roundings stay within 5%
        assert_close(y, y32, 5e-2, 5e-2, f"train={train}")
    assert_matches_spec(y, spec)


@pytest.mark.parametrize("name", cases())
def test_gradients_are_finite(name):
    case = CASES[name]
    lay, spec, params, state, x = built(name)
    grads = results32(name)["grads"]
    if not case.int_max:
        assert grads[1].shape == x.shape
    for g in jax.tree.leaves(grads):
        assert bool(jnp.all(jnp.isfinite(g)))
    if params:
        assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads[0]))


@pytest.mark.parametrize("name", cases())
def test_gradients_match_finite_differences(name):
    # the project's checker in float64, train mode (eval mode only for cases tagged gradcheck=eval, whose
    # train-mode gradient is a deliberate surrogate): parameters and float inputs against finite differences
    case = CASES[name]
    with backend_optimizations():  # the checker runs each kernel dozens of times: unoptimised float64 convs crawl
        report = check_case(case, modes=("fast",), train=(True,))
    assert report.ok, report.table()
    rev = [r for r in report.results if r.mode.endswith("fast/rev")]
    assert rev and all(r.verdict == PASS for r in rev), report.table()
    floats = [a for a in jax.tree.leaves(built(name)[2]) if jnp.issubdtype(a.dtype, jnp.floating)]
    assert len({r.path for r in rev}) == len(floats) + (0 if case.int_max else 1), "every parameter and x checked"


@pytest.mark.parametrize("name", cases())
def test_keys_stochastic_layers_need_one_and_are_deterministic_with_it(name):
    case = CASES[name]
    lay, _, params, state, x = built(name)
    if case.stochastic:
        with pytest.raises(ValueError, match="needs a PRNG key"):
            call(case, lay, params, state, x, train=True, key=None)
        y1, y3 = (results32(name, k)["f32"][True][0] for k in (5, 6))
        y2 = compiled32(name)(params, state, x, jax.random.PRNGKey(5))["f32"][True][0]
        assert_close(y1, y2, 0, 0)
        assert any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(y1), jax.tree.leaves(y3)))
    else:
        # deterministic layers need no key in train mode (traced abstractly: nothing to compile)
        jax.eval_shape(lambda p, s, x: call(case, lay, p, s, x, train=True, key=None), params, state, x)
    # eval mode never needs a key
    jax.eval_shape(lambda p, s, x: call(case, lay, p, s, x, train=False, key=None), params, state, x)
