"""Gradient checks of Flax NNX, Flax linen and Equinox modules, through each library's functional split.

Each entry point checks the module's parameters and its floating inputs, in eval and train mode, and
names leaves by the module's own parameter paths (``params/layers/0/weight``, ``params/lin/kernel``):

* :func:`check_nnx`: ``nnx.split(module, nnx.Param, ...)``, ``nnx.merge`` per evaluation; modes by
  ``module.eval()`` / ``module.train()`` on a copy; dropout draws one mask (the RNG state is restored).
* :func:`check_linen`: ``module.apply({"params": p, **other collections}, *inputs, **mode_kwargs(train))``;
  train mode makes the other collections (``batch_stats``) mutable and passes ``rngs``.
* :func:`check_equinox`: ``eqx.partition(model, eqx.is_inexact_array)`` / ``eqx.combine``; eval mode
  via ``eqx.nn.inference_mode``; ``call(model, *inputs, key=key)`` runs it.
* :func:`assert_model_grads`: any of these (or a deepcore layer) in one line of a test.

``loss(output)`` (default: the output itself, reduced with a fixed random cotangent) is what is
differentiated. Extra keyword arguments go to :func:`~deepcore.gradcheck.check_grads`. Equinox is
imported only by :func:`check_equinox` (an optional dependency: ``pip install equinox``).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from deepcore.core import implicit_promotion
from deepcore.gradcheck.checker import _ctx, _dtype_name, check_grads
from deepcore.gradcheck.report import Report

FAST = ("fast", "fwd-rev")


def _identity(y):
    return y


def _input_names(inputs) -> tuple:
    return ("x",) if len(inputs) == 1 else tuple(f"x{i}" for i in range(len(inputs)))


def _check_modes(name, build, n_inputs, train, wrt, modes, dtype, seed, **kw) -> Report:
    """``build(train) -> (f, args, argnames)``; check ``args[0]`` (params) and the inputs per mode."""
    unknown = set(wrt) - {"params", "inputs"}
    if unknown or not wrt:
        raise ValueError(f"gradcheck {name}: wrt must name 'params' and/or 'inputs', got {tuple(wrt)}")
    argnums = ((0,) if "params" in wrt else ()) + (tuple(range(1, 1 + n_inputs)) if "inputs" in wrt else ())
    report = Report(name, _dtype_name(dtype))
    for mode in train:
        f, args, argnames = build(mode)
        r = check_grads(f, args, argnums, argnames=argnames, modes=modes, dtype=dtype,
                        seed=seed + (1000 if mode else 0), name=name, **kw)
        report.add(r, "train" if mode else "eval")
    return report


def check_nnx(module, *inputs, loss: Callable = _identity, train: Sequence[bool] = (False, True),
              wrt=("params", "inputs"), modes=FAST, dtype=jnp.float64, seed: int = 0, name: Optional[str] = None,
              **kw) -> Report:
    """Check a Flax NNX module's gradients with respect to its ``nnx.Param`` leaves and its inputs."""
    from flax import nnx

    def build(mode):
        m = nnx.merge(*nnx.split(module))   # a copy: train()/eval() set flags in place
        m.train() if mode else m.eval()
        graphdef, params, rest = nnx.split(m, nnx.Param, ...)

        def f(pure, *args):
            *xs, rest_ = args
            rest_ = jax.tree.map(lambda a: a, rest_)   # fresh variables at this trace level (BatchNorm writes)
            p = jax.tree.map(lambda a: a, params)
            nnx.replace_by_pure_dict(p, pure)
            with implicit_promotion():   # the module's own code, checked in float64, may mix dtypes
                return loss(nnx.merge(graphdef, p, rest_)(*xs))

        return f, (nnx.to_pure_dict(params), *inputs, rest), ("params", *_input_names(inputs), "state")

    return _check_modes(name or type(module).__name__, build, len(inputs), train, wrt, modes, dtype, seed, **kw)


def check_linen(module, variables, *inputs, loss: Callable = _identity, train: Sequence[bool] = (False, True),
                mode_kwargs: Optional[Callable[[bool], dict]] = None, rngs: Optional[dict] = None,
                wrt=("params", "inputs"), modes=FAST, dtype=jnp.float64, seed: int = 0, name: Optional[str] = None,
                **kw) -> Report:
    """Check a Flax linen module's gradients with respect to ``variables["params"]`` and its inputs.

    ``mode_kwargs(train)``: the call's mode arguments, e.g. ``lambda t: {"train": t}`` or
    ``lambda t: {"deterministic": not t}``; without it the module has no modes and is checked once
    (labelled ``eval``). ``rngs``: train-mode RNG streams (default ``{"dropout": PRNGKey(seed)}``).
    """
    if mode_kwargs is None:
        train, mode_kwargs = (False,), (lambda t: {})
    other = {k: v for k, v in variables.items() if k != "params"}

    def build(mode):
        streams = rngs if rngs is not None else {"dropout": jax.random.PRNGKey(seed)}

        def f(params, *args):
            *xs, other_ = args
            extra = dict(rngs=streams, mutable=list(other_)) if mode else {}
            with implicit_promotion():   # the module's own code, checked in float64, may mix dtypes
                y = module.apply({"params": params, **other_}, *xs, **mode_kwargs(mode), **extra)
            return loss(y[0] if mode and other_ else y)

        return f, (variables["params"], *inputs, other), ("params", *_input_names(inputs), "variables")

    return _check_modes(name or type(module).__name__, build, len(inputs), train, wrt, modes, dtype, seed, **kw)


def _eqx_call(model, *xs, key):
    try:
        return model(*xs, key=key)
    except TypeError as e:   # a module whose __call__ takes no key
        if "key" not in str(e):
            raise
        return model(*xs)


def check_equinox(model, *inputs, loss: Callable = _identity, train: Sequence[bool] = (False, True),
                  call: Callable = _eqx_call, key=None, wrt=("params", "inputs"), modes=FAST, dtype=jnp.float64,
                  seed: int = 0, name: Optional[str] = None, **kw) -> Report:
    """Check an Equinox module's gradients with respect to its floating array leaves and its inputs.

    ``call(model, *inputs, key=key)`` runs the model (default: ``model(*inputs, key=key)``, or
    ``model(*inputs)`` when it takes no key); ``key`` (default ``PRNGKey(seed)``) is the same at
    every evaluation, so dropout draws one mask.
    """
    import equinox as eqx

    key = jax.random.PRNGKey(seed) if key is None else key

    def build(mode):
        m = eqx.nn.inference_mode(model, value=not mode)
        params, static = eqx.partition(m, eqx.is_inexact_array)

        def f(p, *xs):
            return loss(call(eqx.combine(p, static), *xs, key=key))

        return f, (params, *inputs), ("params", *_input_names(inputs))

    return _check_modes(name or type(model).__name__, build, len(inputs), train, wrt, modes, dtype, seed, **kw)


def check_model(model, *inputs, variables=None, **kw) -> Report:
    """Dispatch on the model's library: NNX, linen (give ``variables``), Equinox, or a deepcore layer."""
    from flax import linen, nnx

    if isinstance(model, nnx.Module):
        return check_nnx(model, *inputs, **kw)
    if isinstance(model, linen.Module):
        if variables is None:
            raise ValueError(f"gradcheck {type(model).__name__}: a linen module needs variables=model.init(...)")
        return check_linen(model, variables, *inputs, **kw)
    if any(c.__module__.startswith("equinox") for c in type(model).__mro__):
        return check_equinox(model, *inputs, **kw)
    from deepcore.gradcheck.cases import check_layer   # a deepcore layer: params/state built or given
    x = inputs[0]
    with _ctx(_dtype_name(kw.get("dtype", jnp.float64))):
        return check_layer(model, jax.ShapeDtypeStruct(x.shape, x.dtype), x=x, **kw)


def assert_model_grads(model, *inputs, variables=None, **kw) -> Report:
    """One line in a test: ``assert_model_grads(model, x)`` raises ``AssertionError`` naming every wrong
    leaf and element (failures, then one line per mode) when the model's gradients are wrong."""
    report = check_model(model, *inputs, variables=variables, **kw)
    if not report.ok:
        raise AssertionError(f"{report.name}: gradients are wrong\n{report}\n(report.table() has every leaf)")
    return report
