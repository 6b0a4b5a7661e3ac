"""A function evaluated along a line ``t + a v`` of one leaf, without forming the points where it can.

A finite difference evaluates ``f(t + a v)`` for several scalars ``a``. Forming each point is a pass over the leaf,
and in a large check's fast-compiled kernel that pass is an unvectorised loop (BUILD_NOTES, issue 20). But a large
leaf usually enters ``f`` through a linear map: a weight through a dot or a convolution, perhaps after a transpose
or a reshape. For such a use ``L(t + a v) = L(t) + a L(v)``, and ``L(t)``, ``L(v)`` do not depend on ``a``: XLA
hoists them out of the loop over the stencil, and each point costs what the rest of the model costs.

:func:`along` traces ``f`` once and evaluates its jaxpr with the leaf bound to the line (``t``, ``v``): reshapes,
transposes, squeezes and broadcasts move the line (applied to ``t`` and ``v``); a dot or a convolution of the line
with an array that is not on it gives ``L(t) + a L(v)``; a call of a jitted function is evaluated the same way
inside; every other use forms the point ``t + a v`` (once per evaluation), so the function is the same. The values
equal ``f(t + a v)`` in exact arithmetic; in floating point they differ by rounding, and by less than the point's
own rounding (``t + a v`` rounds every element).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
from jax import lax
from jax.extend import core, source_info_util

# moved along with the line: op(t + a v) = op(t) + a op(v), and op(t), op(v) are as cheap as op
_MOVES = {lax.reshape_p, lax.transpose_p, lax.squeeze_p, lax.broadcast_in_dim_p}
# linear in each operand: op(x, t + a v) = op(x, t) + a op(x, v)
_LINEAR = {lax.dot_general_p, lax.conv_general_dilated_p}


class _Line(NamedTuple):
    t: jax.Array
    v: jax.Array


def along(f: Callable, t: jax.Array, v: jax.Array) -> Callable:
    """``a -> f(t + a v)`` for a scalar ``a`` (an array of shape ()), ``f`` of one array of ``t``'s shape and dtype
    (it may close over other arrays and tracers); ``f`` is traced once, here."""
    closed, shape = jax.make_jaxpr(f, return_shape=True)(t)
    tree = jax.tree.structure(shape)

    def on_line(a):
        try:
            return jax.tree.unflatten(tree, _eval(closed.jaxpr, closed.consts, [_Line(t, v)], a))
        except Exception:   # an equation this interpreter cannot bind again (another JAX's internals): the
            return f(_point(_Line(t, v), a))   # points formed, as without it (an error of f's own is raised here)
    return on_line


def _point(x, a):
    return x.t + a.astype(x.t.dtype) * x.v if isinstance(x, _Line) else x


def _eval(jaxpr: core.Jaxpr, consts, args, a):
    env, points = {}, {}

    def read(var):
        return var.val if isinstance(var, core.Literal) else env[var]

    def formed(var):   # the point t + a v, formed once per variable
        if isinstance(var, core.Literal) or not isinstance(env[var], _Line):
            return read(var)
        if var not in points:
            points[var] = _point(env[var], a)
        return points[var]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        ins = [read(x) for x in eqn.invars]
        on = [isinstance(x, _Line) for x in ins]
        params = eqn.primitive.get_bind_params(eqn.params)
        with source_info_util.user_context(eqn.source_info.traceback), eqn.ctx.manager:
            if not any(on):
                out = eqn.primitive.bind(*ins, **params)
            elif eqn.primitive in _MOVES:
                out = _Line(*(eqn.primitive.bind(x, **params) for x in ins[0]))
            elif eqn.primitive in _LINEAR and sum(on) == 1:
                i = on.index(True)
                yt, yv = (eqn.primitive.bind(*(ins[:i] + [x] + ins[i + 1:]), **params) for x in ins[i])
                out = yt + a.astype(yt.dtype) * yv
            elif "jaxpr" in eqn.params and eqn.primitive.name in ("jit", "pjit"):   # a jitted call: look inside
                inner = eqn.params["jaxpr"]
                out = _eval(inner.jaxpr, inner.consts, ins, a)
            else:
                out = eqn.primitive.bind(*(formed(x) for x in eqn.invars), **params)
        outs = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, outs))
    return [formed(x) for x in jaxpr.outvars]
