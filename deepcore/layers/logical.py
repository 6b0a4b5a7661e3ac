"""Logical axis names of parameters and activations, and rules that map them onto a device mesh.

Every weighted layer declares the names of its parameters' axes next to its ``init`` (``Layer.axes``: a
dict mirroring the parameters, e.g. Dense ``{"w": ("dense_in", "dense_out"), "b": ("dense_out",)}``, or a
function of the parameter shapes returning one). ``init``/``apply`` never read them, so code that ignores
sharding is unchanged; :func:`logical_axes` walks a model's layer tree and returns a pytree of name tuples
mirroring its parameters (leaves are tuples: map over it with ``is_leaf=is_names``).

Rules are ``[(logical_name, mesh_axes), ...]``, ``mesh_axes`` a mesh axis name, a tuple of them, or None
(replicated); the first rule naming an axis wins. ``"*"`` is the fallback rule for every axis no rule names:
``("*", None)`` replicates them, ``("*", "data")`` splits each array's largest dimension that divides the
axis (the rule-free fully sharded layout). Mesh axes a mesh lacks count as size 1, so one rule set serves
every mesh shape (data, fsdp, tensor, or products of them).

:func:`constrain` pins an activation's sharding by logical names inside model code
(``jax.lax.with_sharding_constraint``); it does nothing unless a mesh and rules are active
(:func:`activation_rules`), e.g. while :func:`deepcore.train.sharding.with_rules` traces the loss.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Optional, Sequence

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

WILDCARD = "*"


def is_names(x) -> bool:
    """True for a leaf of a logical-axes tree: a tuple of axis names (``()`` for a scalar)."""
    return isinstance(x, tuple) and all(isinstance(n, str) or n is None for n in x)


def _mirror(decl, params, path: str):
    if isinstance(params, dict):
        if not isinstance(decl, dict):
            raise ValueError(f"{path}: expected logical axes for a dict of parameters, got {decl!r}")
        missing = [k for k in params if k not in decl]
        if missing:
            raise ValueError(f"{path}/{missing[0]}: no logical axes declared (declared: {sorted(decl)})")
        return {k: _mirror(decl[k], v, f"{path}/{k}") for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_mirror(d, v, f"{path}/{i}") for i, (d, v) in enumerate(zip(decl, params))]
    if not is_names(decl) or len(decl) != len(params.shape):
        raise ValueError(f"{path}: expected {len(params.shape)} logical axis names for shape "
                         f"{tuple(params.shape)}, got {decl!r}")
    return decl


def _walk(lay, params, path: str):
    if lay.axes is not None:
        return _mirror(lay.axes(params) if callable(lay.axes) else lay.axes, params, path)
    if not jax.tree.leaves(params):
        return jax.tree.map(lambda a: (), params)
    named = dict(lay.children)
    if len(named) == 1 and "inner" in named and "inner" not in params:   # a wrapper (remat): same params
        return _walk(named["inner"], params, path)
    if not named:
        raise ValueError(f"{path}: layer {lay.name!r} declares no logical axes for its parameters "
                         f"(give layer(..., axes=...))")
    missing = [k for k in params if k not in named]
    if missing:
        raise ValueError(f"{path}/{missing[0]}: parameters of no child layer of {lay.name!r}")
    return {k: _walk(named[k], v, f"{path}/{k}") for k, v in params.items()}


def logical_axes(model, spec=None, *, params=None):
    """A pytree mirroring ``model``'s parameters whose leaves are tuples of logical axis names.

    ``params`` (arrays or ``ShapeDtypeStruct``) default to ``model.init`` traced abstractly for ``spec``
    (nothing allocated). A layer with parameters that declares no names raises ``ValueError`` naming its path."""
    if params is None:
        params = jax.eval_shape(lambda k: model.init(k, spec)[1], jax.random.PRNGKey(0))
    return _walk(model, params, "params")


def _targets(rule_value, mesh) -> tuple:
    axes = (rule_value,) if isinstance(rule_value, str) else tuple(rule_value or ())
    return tuple(a for a in axes if a in mesh.shape)


def _size(mesh, axes) -> int:
    n = 1
    for a in axes:
        n *= mesh.shape[a]
    return n


def spec_for(names: Sequence, shape, mesh, rules, *, path: str = "", strict: bool = True, used=None) -> P:
    """The ``PartitionSpec`` of an array of ``shape`` whose axes are ``names`` under ``rules`` on ``mesh``.

    ``strict``: an axis no rule names (and no ``"*"`` rule) or a dimension that does not divide its mesh axes
    raises ``ValueError`` naming ``path``; otherwise such a dimension stays whole. ``used``: a set collecting
    the logical names that a rule matched."""
    table, wildcard = {}, None
    for name, value in rules:
        if name == WILDCARD:
            wildcard = value if wildcard is None else wildcard
        else:
            table.setdefault(name, value)
    spec, taken, loose = [None] * len(shape), set(), []
    for d, (name, size) in enumerate(zip(names, shape)):
        if name not in table:
            if wildcard is None and strict:
                raise ValueError(f"{path}: logical axis {name!r} (dim {d} of shape {tuple(shape)}) matches no rule")
            loose.append(d)
            continue
        if used is not None:
            used.add(name)
        axes = tuple(a for a in _targets(table[name], mesh) if a not in taken)
        n = _size(mesh, axes)
        if axes and size % n:
            if strict:
                raise ValueError(f"{path}: dim {d} ({name!r}) of size {size} does not divide over mesh axes "
                                 f"{axes} of {n} devices")
            continue
        if axes:
            spec[d] = axes[0] if len(axes) == 1 else axes
            taken.update(axes)
    axes = tuple(a for a in _targets(wildcard, mesh) if a not in taken)
    n = _size(mesh, axes)
    for d in sorted(loose, key=lambda d: -shape[d]):   # the fallback rule: the largest dimension that divides
        if axes and shape[d] % n == 0 and shape[d] >= n:
            spec[d] = axes[0] if len(axes) == 1 else axes
            break
    return P(*spec)


_ACTIVE = threading.local()


@contextlib.contextmanager
def activation_rules(mesh, rules):
    """Make :func:`constrain` pin activations by ``rules`` on ``mesh`` inside this block (while tracing)."""
    before = getattr(_ACTIVE, "value", None)
    _ACTIVE.value = (mesh, list(rules))
    try:
        yield
    finally:
        _ACTIVE.value = before


def constrain(x, names: Sequence[Optional[str]]):
    """``x`` with its sharding pinned to the logical ``names`` (one per dim) under the active rules; ``x``
    unchanged when no rules are active or the rank differs. Dimensions that do not divide stay whole."""
    active = getattr(_ACTIVE, "value", None)
    if active is None or x.ndim != len(names):
        return x
    mesh, rules = active
    spec = spec_for(names, x.shape, mesh, [r for r in rules if r[0] != WILDCARD], strict=False)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


__all__ = ["WILDCARD", "is_names", "logical_axes", "spec_for", "activation_rules", "constrain"]
