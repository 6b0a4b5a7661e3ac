"""Look inside a model: record any layer's output by path, and per-layer statistics, without editing the model.

A path names a layer inside the model as its parameters do: ``"conv_1"``, ``"residual_0/body/relu_0"``
(the root model itself is not part of the path). :func:`capture` rebuilds the model with the chosen
layers wrapped; a wrapped layer returns its output inside the new state, and the capturing apply takes
it out again, so nothing is global and the result jits and vmaps like any apply::

    run = capture(model, ["relu_0", "dense_1"])
    logits, state, acts = run(params, state, x)        # acts: {"relu_0": (B, ...), "dense_1": (B, ...)}
    stats = layer_stats(model, params, state, x, grads=grads)   # {"act_norm/conv_0": ..., "dead_relu/relu_0": ...}

Rebuilding knows the combinators ``serial``, ``parallel`` and ``residual``; pass ``rebuild=`` for others.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, Iterable, Optional, Union

import jax
import jax.numpy as jnp

from deepcore.core import Layer
from deepcore.tree import flatten_dict

CAPTURED = "__captured__"  # the key under which a wrapped layer leaves its output in its state entry

Rebuild = Callable[[Layer, Dict[str, Layer]], Optional[Layer]]


def layer_paths(model: Layer, *, leaves_only: bool = False) -> Dict[str, str]:
    """``{path: kind}`` for every layer inside ``model`` in model order (``kind`` is the layer's name)."""
    found: Dict[str, str] = {}

    def walk(lay: Layer, prefix: str):
        for name, child in lay.children:
            path = f"{prefix}{name}"
            if not (leaves_only and child.children):
                found[path] = child.name
            walk(child, path + "/")

    walk(model, "")
    return found


def _closure(fn) -> dict:
    return inspect.getclosurevars(fn).nonlocals


def _inner_apply(lay: Layer):
    """The ``apply`` that :func:`deepcore.core.layer` wrapped (its wrapper calls it ``call``)."""
    free = _closure(lay.apply)
    return free.get("call", free.get("apply"))


def _rebuild(lay: Layer, children: Dict[str, Layer], rebuild: Optional[Rebuild]) -> Layer:
    """``lay`` with its children replaced (same parameter and state layout)."""
    from deepcore.layers import combinators as C

    if rebuild is not None:
        new = rebuild(lay, children)
        if new is not None:
            return new
    if lay.name == "serial":
        return C.serial(children)
    if lay.name == "residual":
        return C.residual(children["body"], children["shortcut"])
    if lay.name == "parallel":
        # merge and axis are arguments of the original ``parallel`` call; read them from its apply
        inner = _closure(_inner_apply(lay))
        return C.parallel(children, merge=inner["merge"], axis=inner["axis"])
    composite = getattr(_inner_apply(lay), "__self__", None)  # a layers.compose layer
    if composite is not None and hasattr(composite, "forward") and hasattr(composite, "children"):
        from deepcore.layers.compose import compose
        return compose(lay.name, children, composite.forward)
    raise TypeError(f"cannot rebuild a {lay.name!r} layer with wrapped children; pass "
                    f"rebuild=lambda layer, children: ... returning it built from `children`")


def _recording(lay: Layer) -> Layer:
    """``lay`` whose apply also returns its output in the state: ``{**state, CAPTURED: y}``."""

    def apply(params, state, x, *, key=None, train=False):
        y, s = lay.apply(params, {k: v for k, v in state.items() if k != CAPTURED}, x, key=key, train=train)
        return y, {**s, CAPTURED: y}

    return Layer(lay.init, apply, lay.name, lay.children, lay.axes)


def with_capture(model: Layer, paths: Iterable[str], *, rebuild: Optional[Rebuild] = None) -> Layer:
    """``model`` rebuilt so that the layers at ``paths`` record their outputs in the returned state.

    Same ``init``, same parameter and state layout; use :func:`split_captured` on the new state.
    """
    wanted = list(dict.fromkeys(paths))
    known = layer_paths(model)
    missing = [p for p in wanted if p not in known]
    if missing:
        raise KeyError(f"no layer at {missing}; the model's layer paths are {list(known)}")

    def build(lay: Layer, prefix: str) -> Layer:
        if not any(p.startswith(prefix) for p in wanted):
            return lay
        children = {}
        for name, child in lay.children:
            path = f"{prefix}{name}"
            new = build(child, path + "/")
            children[name] = _recording(new) if path in wanted else new
        return _rebuild(lay, children, rebuild)

    rebuilt = build(model, "")
    return Layer(model.init, rebuilt.apply, model.name, rebuilt.children, rebuilt.axes)


def split_captured(state, prefix: str = "") -> tuple:
    """``(state without captures, {path: captured output})`` from the state of a :func:`with_capture` model."""
    if not isinstance(state, dict):
        return state, {}
    clean, found = {}, {}
    for k, v in state.items():
        if k == CAPTURED:
            found[prefix.rstrip("/")] = v
            continue
        if isinstance(v, dict):
            v, sub = split_captured(v, f"{prefix}{k}/")
            found.update(sub)
            if not v:
                continue
        clean[k] = v
    return clean, found


def capture(model: Layer, paths: Iterable[str], *, rebuild: Optional[Rebuild] = None) -> Callable:
    """``run(params, state, x, *, key=None, train=False) -> (y, new_state, {path: output})``.

    ``new_state`` equals what ``model.apply`` returns; the dict holds one entry per path.
    """
    wanted = list(dict.fromkeys(paths))
    wrapped = with_capture(model, wanted, rebuild=rebuild)

    def run(params, state, x, *, key=None, train=False):
        y, new_state = wrapped.apply(params, state, x, key=key, train=train)
        new_state, acts = split_captured(new_state)
        return y, new_state, {p: acts[p] for p in wanted}

    return run


# ----------------------------------------------------------------------------- statistics

def _norm(a):
    a = a.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(a * a))


def activation_stats(acts: Dict[str, jax.Array], kinds: Optional[Dict[str, str]] = None) -> Dict[str, jax.Array]:
    """Scalars per captured output ``(B, ..., C)``:

    * ``act_norm/<path>``: the mean over examples of each example's L2 norm;
    * ``act_rms/<path>``: the root mean square of all entries;
    * ``dead_relu/<path>`` (layers of kind ``relu``): the fraction of channels (last axis) that are zero
      for every example and position of the batch.
    """
    kinds = kinds or {}
    out = {}
    for path, y in acts.items():
        if not hasattr(y, "ndim"):  # e.g. a parallel(merge=None) tuple
            continue
        y = y.astype(jnp.float32)
        flat = y.reshape(y.shape[0], -1) if y.ndim > 1 else y[None]
        out[f"act_norm/{path}"] = jnp.mean(jnp.sqrt(jnp.sum(flat * flat, axis=1)))
        out[f"act_rms/{path}"] = jnp.sqrt(jnp.mean(y * y))
        if kinds.get(path) == "relu":
            alive = jnp.any(y.reshape(-1, y.shape[-1]) > 0, axis=0)
            out[f"dead_relu/{path}"] = 1.0 - jnp.mean(alive.astype(jnp.float32))
    return out


def grad_norms(grads) -> Dict[str, jax.Array]:
    """``{"grad_norm/<layer path>": L2 norm}`` over the leaves each layer owns (e.g. ``conv_0``'s ``w`` and ``b``)."""
    groups: Dict[str, list] = {}
    for path, leaf in flatten_dict(grads).items():
        groups.setdefault(path.rsplit("/", 1)[0] if "/" in path else path, []).append(leaf)
    return {f"grad_norm/{p}": jnp.sqrt(sum(_norm(a) ** 2 for a in leaves)) for p, leaves in groups.items()}


def layer_stats(model: Layer, params, state, x, *, grads=None, paths: Union[None, Iterable[str]] = None,
                key=None, train: bool = False, rebuild: Optional[Rebuild] = None) -> Dict[str, jax.Array]:
    """Per-layer statistics for one batch, as a flat dict of scalars a training loop can log.

    ``paths``: the layers to look at (default: every layer without children). ``grads`` (a gradient
    tree shaped like ``params``) adds ``grad_norm/<path>`` per weighted layer. Jit it with ``model``
    and ``paths`` closed over: ``jax.jit(functools.partial(layer_stats, model))``.
    """
    kinds = layer_paths(model)
    paths = [p for p, _ in layer_paths(model, leaves_only=True).items()] if paths is None else list(paths)
    _, _, acts = capture(model, paths, rebuild=rebuild)(params, state, x, key=key, train=train)
    out = activation_stats(acts, kinds)
    if grads is not None:
        out.update(grad_norms(grads))
    return out
