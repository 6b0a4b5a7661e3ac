"""Combinators: ``serial`` (a stack), ``parallel`` (fan-out with a merge function) and ``residual`` (skip).

Children are named by kind and count (``conv_0``, ``conv_1``, ``bn_0``) unless given as a dict
``{"encoder": ..., "head": ...}``. Children without parameters (activations, pooling) leave no
entry in the parameter dict; children without state leave none in the state dict.
"""
from collections import Counter
from typing import Dict, Union

import jax
import jax.numpy as jnp

from deepcore.core import Layer, ShapeError, layer, split_key


def _named(layers) -> Dict[str, Layer]:
    if len(layers) == 1 and isinstance(layers[0], dict):
        named = dict(layers[0])
    else:
        counts, named = Counter(), {}
        for lay in layers:
            if not isinstance(lay, Layer):
                raise TypeError(f"expected a deepcore Layer, got {lay!r}; wrap functions with layers.Lambda")
            named[f"{lay.name}_{counts[lay.name]}"] = lay
            counts[lay.name] += 1
    for name, lay in named.items():
        if not isinstance(lay, Layer):
            raise TypeError(f"child {name!r}: expected a deepcore Layer, got {lay!r}")
    return named


def _apply_child(name, lay, params, state, x, key, train):
    try:
        return lay.apply(params.get(name, {}), state.get(name, {}), x, key=key, train=train)
    except ShapeError as e:
        raise e.within(name) from None


def _init_child(name, lay, key, spec, params, state):
    try:
        out, p, s = lay.init(key, spec)
    except ShapeError as e:
        raise e.within(name) from None
    if p:
        params[name] = p
    if s:
        state[name] = s
    return out


def serial(*layers: Union[Layer, Dict[str, Layer]]) -> Layer:
    """Apply layers one after another: ``serial(Conv(32, (3, 3)), Relu, Flatten, Dense(10))``."""
    named = _named(layers)

    def init(key, spec):
        params, state = {}, {}
        for k, (name, lay) in zip(split_key(key, len(named)), named.items()):
            spec = _init_child(name, lay, k, spec, params, state)
        return spec, params, state

    def apply(params, state, x, *, key=None, train=False):
        new_state = dict(state)
        for k, (name, lay) in zip(split_key(key, len(named)), named.items()):
            x, s = _apply_child(name, lay, params, state, x, k, train)
            if s:
                new_state[name] = s
        return x, new_state

    return layer("serial", init, apply, named.items())


MERGES = ("sum", "product", "concat", None)


def _merge(outs, merge, axis):
    if callable(merge):
        return merge(*outs)
    if merge == "sum":
        return sum(outs[1:], outs[0])
    if merge == "product":
        out = outs[0]
        for o in outs[1:]:
            out = out * o
        return out
    if merge == "concat":
        return jnp.concatenate(outs, axis=axis)
    if merge is None:
        return tuple(outs)
    raise ValueError(f"parallel: merge: expected one of {MERGES} or a function, got {merge!r}")


def parallel(*layers: Union[Layer, Dict[str, Layer]], merge="concat", axis: int = -1) -> Layer:
    """Feed the same input to every child and merge their outputs (in child order).

    ``merge``: ``"sum"``, ``"product"`` (elementwise, broadcasting: gating), ``"concat"`` (on ``axis``),
    ``None`` (a tuple), or any function ``merge(*outputs) -> y``. A GLU is
    ``parallel(Dense(d), serial(Dense(d), Sigmoid), merge="product")``; squeeze-and-excitation multiplies
    ``Identity`` by a ``(B, 1, 1, C)`` gate (``serial(GlobalAvgPool(), Dense(r), Relu, Dense(C), Sigmoid,
    Reshape((1, 1, C)))``).
    """
    if not (callable(merge) or merge in MERGES):
        raise ValueError(f"parallel: merge: expected one of {MERGES} or a function, got {merge!r}")
    named = _named(layers)

    def init(key, spec):
        params, state, outs = {}, {}, []
        for k, (name, lay) in zip(split_key(key, len(named)), named.items()):
            outs.append(_init_child(name, lay, k, spec, params, state))
        try:
            out = jax.eval_shape(lambda *o: _merge(list(o), merge, axis), *outs)
        except (TypeError, ValueError) as e:
            shapes = {n: tuple(o.shape) for n, o in zip(named, outs)}
            what = getattr(merge, "__name__", "merge") if callable(merge) else merge
            raise ShapeError(f"cannot {what} the outputs of the branches {shapes}: {e}") from None
        return out, params, state

    def apply(params, state, x, *, key=None, train=False):
        outs, new_state = [], dict(state)
        for k, (name, lay) in zip(split_key(key, len(named)), named.items()):
            y, s = _apply_child(name, lay, params, state, x, k, train)
            outs.append(y)
            if s:
                new_state[name] = s
        return _merge(outs, merge, axis), new_state

    return layer("parallel", init, apply, named.items())


def residual(body: Layer, shortcut: Layer = None) -> Layer:
    """``body(x) + shortcut(x)`` (identity shortcut by default); children named ``body``, ``shortcut``."""
    from deepcore.layers.basic import Identity

    inner = parallel({"body": body, "shortcut": shortcut or Identity}, merge="sum")
    return layer("residual", inner.init, inner.apply, inner.children, axes=inner.axes)
