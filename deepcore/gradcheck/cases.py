"""Gradient checks of layers and catalog cases: a layer becomes a scalar function of (params, x).

``f(params, x) = sum(apply(params, state, x, key=fixed, train=mode)[0] * u)`` with a fixed random
cotangent ``u``; the new state is carried as auxiliary output; integer inputs (token ids) are not
perturbed; a stochastic layer gets the same key at every evaluation, so dropout draws one mask.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.core import as_spec
from deepcore.gradcheck import compiling
from deepcore.gradcheck.checker import MODES, _ctx, _dtype_name, check_grads
from deepcore.gradcheck.problem import put
from deepcore.gradcheck.report import Report


def layer_function(apply, state, *, key, train: bool, cotangent, axis_name: Optional[str] = None):
    """``f(params, x) -> (<u, y>, new_state)`` for a layer's ``apply`` (``axis_name`` bound if given)."""

    def run(params, x):
        return apply(params, state, x, key=key, train=train)

    if axis_name is not None:  # a size-1 named axis for layers that reduce across devices (BatchNorm)
        unnamed = run

        def run(params, x):
            y, s = jax.vmap(lambda _: unnamed(params, x), axis_name=axis_name)(jnp.zeros(1))
            return jax.tree.map(lambda a: a[0], (y, s))

    def f(params, x):
        y, new_state = run(params, x)
        ys = [a for a in jax.tree.leaves(y) if jnp.issubdtype(a.dtype, jnp.floating)]
        return sum(jnp.sum(a * u.astype(a.dtype)) for a, u in zip(ys, cotangent)), new_state

    return f


@functools.lru_cache(maxsize=512)
def _layer_loss(apply, train: bool, axis_name: Optional[str]):
    """``f(params, x, state, key, u) -> (<u, y>, new_state)``: one function object per (apply, mode), so the
    checker's compiled kernels are reused across seeds, states and cotangents."""

    def f(params, x, state, key, u):
        return layer_function(apply, state, key=key, train=train, cotangent=u, axis_name=axis_name)(params, x)

    return f


def check_layer(layer, spec, *, params=None, state=None, x=None, train: Sequence[bool] = (False, True),
                modes: Sequence[str] = MODES, seed: int = 0, int_max: int = 0, axis_name: Optional[str] = None,
                dtype=jnp.float64, name: Optional[str] = None, **kw) -> Report:
    """Check a layer's derivatives with respect to its parameters and its input, in eval and train mode.

    ``spec``: the input spec or shape (e.g. ``(4, 8)``); the layer is built in ``dtype`` from ``seed``
    unless ``params``/``state`` are given; ``x`` defaults to N(0, 1) floats (ints in ``[0, int_max)``).
    Result modes read ``"eval fast/rev"``, ``"train second/fr"``; leaves ``params/...`` and ``x``.
    Extra keyword arguments go to :func:`~deepcore.gradcheck.check_grads` (``k``, ``full_max``, ...).
    """
    dt = _dtype_name(dtype)
    spec = as_spec(spec)
    name = name or layer.name
    report = Report(name, dt)
    with _ctx(dt):
        # the initialiser's key uses XLA's bit generator (threefry's takes seconds of XLA compile on a CPU, more
        # than the check); the input is drawn on the host (a compiled N(0, 1) draw alone costs a fifth of a
        # small check); the apply key stays threefry (dropout)
        k_init = jax.random.key(4 * seed, impl="unsafe_rbg")
        k_apply = jax.random.PRNGKey(4 * seed + 3)
        integer = bool(int_max) or jnp.issubdtype(spec.dtype, jnp.integer)
        spec = jax.ShapeDtypeStruct(spec.shape, jnp.int32 if integer else dtype)
        if x is None:
            host = np.random.default_rng([seed, 1])
            x = put(host.integers(0, int_max or 2, spec.shape, dtype=np.int32) if integer
                            else host.standard_normal(spec.shape).astype(spec.dtype))
        if params is None:
            params, init_state = _initialiser(layer.init, spec, dt)(k_init)
            state = init_state if state is None else state
        state = {} if state is None else state
        rng = np.random.default_rng(seed)
        for mode in train:
            out = jax.eval_shape(lambda p, xx: _float_outputs(layer, p, state, xx, k_apply, mode, axis_name),
                                 params, x)
            u = [put(rng.standard_normal(o.shape)) for o in out]
            f = _layer_loss(layer.apply, mode, axis_name)
            r = check_grads(f, (params, x, state, k_apply, u), (0, 1), modes=modes, dtype=dtype,
                            argnames=("params", "x", "state", "key", "u"), seed=seed + (1000 if mode else 0),
                            has_aux=True, name=name, **kw)
            report.add(r, "train" if mode else "eval")
    return report


@functools.lru_cache(maxsize=256)
def _initialiser(init, spec, dtype_name: str):
    """``key -> (params, state)`` of ``init`` at ``spec``, compiled once per (layer, spec) without LLVM
    optimisation (it runs once per seed); a layer without parameters or state compiles nothing. ``dtype_name``
    (the check's) keys the cache: 64-bit mode is on for float64 checks only."""
    build = jax.jit(lambda k: init(k, spec)[1:])
    key = jax.random.key(0, impl="unsafe_rbg")
    shapes = jax.eval_shape(build, key)
    if not jax.tree.leaves(shapes):
        return lambda key: shapes
    return compiling.compile_lowered(build.lower(key), compiling.FAST_COMPILE)


def _float_outputs(layer, params, state, x, key, train, axis_name):
    if axis_name is None:
        y = layer.apply(params, state, x, key=key, train=train)[0]
    else:
        y = jax.vmap(lambda _: layer.apply(params, state, x, key=key, train=train)[0],
                     axis_name=axis_name)(jnp.zeros(1))
        y = jax.tree.map(lambda a: a[0], y)
    return [a for a in jax.tree.leaves(y) if jnp.issubdtype(a.dtype, jnp.floating)]


def check_case(case, *, seed: int = 0, modes: Sequence[str] = MODES, dtype=jnp.float64, **kw) -> Report:
    """Check one catalog entry: a :class:`~deepcore.catalog.Case` (train and eval) or a ``FunctionCase``.

    A case tagged ``gradcheck=eval`` is checked in eval mode only: its train-mode gradient is by design
    not the derivative of its train-mode output (e.g. spectral norm's power iteration under stop_gradient).
    A case tagged ``gradcheck=first-order`` skips the ``second`` mode: its first derivative is exact but its
    autodiff Hessian is by design not the true one (spectral norm holds ``u, v`` constant, as in Miyato et al.).
    """
    if hasattr(case, "shape"):
        if "gradcheck=eval" in case.tags:  # train-mode gradient is a deliberate surrogate (spectral-norm power
            kw["train"] = (False,)          # iteration under stop_gradient): only eval mode is a derivative
        if "gradcheck=first-order" in case.tags:
            modes = tuple(m for m in modes if m != "second")
        return check_layer(_made(case), case.spec(np.float64 if _dtype_name(dtype) == "float64" else dtype),
                           modes=modes, seed=seed, int_max=case.int_max, axis_name=case.axis_name(),
                           dtype=dtype, name=case.name, **kw)
    with _ctx(_dtype_name(dtype)):
        fn, args = case.make(jax.random.PRNGKey(seed))
        r = check_grads(fn, args, case.argnums, argnames=case.argnames or None, modes=modes, dtype=dtype,
                        seed=seed, has_aux=case.has_aux, name=case.name, **kw)
    return r


_MADE: dict = {}


def _made(case):
    """``case.make()``, once per case in this process (its layer's functions key the compiled kernels)."""
    if case not in _MADE:
        _MADE[case] = case.make()
    return _MADE[case]
