"""Pytree utilities: parameter counts, ``"conv_0/w"`` paths, path get/set, path masks, freezing, summary.

A path is the ``/``-joined keys from the root to a leaf (``"serial_0/dense_1/w"``; list and
tuple entries by index). Trees are never changed in place: ``set_path`` returns a new tree.
"""
import fnmatch
import math
import re
from collections.abc import Mapping
from typing import Any, Iterable, Union

import jax
import numpy as np
import optax
from flax import traverse_util

from deepcore.core import Layer, as_spec

Patterns = Union[str, Iterable[str]]


def _size(leaf) -> int:
    return math.prod(getattr(leaf, "shape", np.shape(leaf)))


def param_count(tree) -> int:
    """Total number of scalars in the array leaves of ``tree`` (arrays or ``ShapeDtypeStruct``)."""
    return sum(_size(leaf) for leaf in jax.tree.leaves(tree))


def path_str(keypath) -> str:
    """A ``jax.tree_util`` key path as ``"a/b/0"``."""
    return jax.tree_util.keystr(tuple(keypath), simple=True, separator="/")


def leaf_paths(tree) -> list:
    """The path of every leaf, in ``jax.tree.leaves`` order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def flatten_dict(tree: Mapping) -> dict:
    """Nested dicts to ``{"a/b/c": leaf}`` in insertion order (empty sub-dicts dropped)."""
    return traverse_util.flatten_dict(tree, sep="/")


def unflatten_dict(flat: Mapping) -> dict:
    """``{"a/b/c": leaf}`` back to nested dicts; inverse of :func:`flatten_dict`."""
    return traverse_util.unflatten_dict(dict(flat), sep="/")


# ----------------------------------------------------------------------------- get / set

def _keys(path) -> list:
    if isinstance(path, str):
        return [k for k in path.split("/") if k] if path else []
    return list(path)


def _child(node, key, where):
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
        raise KeyError(f"no {key!r} under {where or '(root)'!r}; it has {list(node)}")
    if isinstance(node, (list, tuple)):
        i = int(key)
        if -len(node) <= i < len(node):
            return node[i]
        raise KeyError(f"no index {key!r} under {where or '(root)'!r}; it has {len(node)} entries")
    raise KeyError(f"{where or '(root)'!r} is a leaf, cannot look up {key!r} in it")


def get_path(tree, path):
    """The subtree or leaf at ``path`` (``"conv_0/w"`` or a sequence of keys); ``KeyError`` names what exists."""
    node, where = tree, ""
    for key in _keys(path):
        node = _child(node, key, where)
        where = f"{where}/{key}" if where else str(key)
    return node


def set_path(tree, path, value):
    """A new tree equal to ``tree`` with the node at ``path`` replaced by ``value``.

    Only the containers along ``path`` are copied; every other subtree is shared, and ``tree``
    itself is left untouched. The path must exist.
    """
    keys = _keys(path)
    if not keys:
        return value

    def go(node, i, where):
        key = keys[i]
        old = _child(node, key, where)
        new = value if i == len(keys) - 1 else go(old, i + 1, f"{where}/{key}" if where else str(key))
        if isinstance(node, Mapping):
            return {**node, key: new}
        items = list(node)
        items[int(key)] = new
        if hasattr(node, "_fields"):  # a NamedTuple
            return type(node)(*items)
        return tuple(items) if isinstance(node, tuple) else items

    return go(tree, 0, "")


# ----------------------------------------------------------------------------- masks and freezing

def _matcher(patterns: Patterns, regex: bool):
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    if regex:
        compiled = [re.compile(p) for p in pats]
        return pats, lambda path: [bool(c.fullmatch(path)) for c in compiled]
    return pats, lambda path: [fnmatch.fnmatchcase(path, p) for p in pats]


def path_mask(tree, patterns: Patterns, *, regex: bool = False):
    """A tree of bools shaped like ``tree``: True where the leaf's path matches any pattern.

    Patterns are globs matched against the whole path (``*`` also crosses ``/``: ``"conv_*"``
    matches every leaf under each ``conv_k``, ``"*/b"`` every bias), or with ``regex=True``
    regular expressions that must match the whole path (``re.fullmatch``).
    """
    _, match = _matcher(patterns, regex)
    return jax.tree_util.tree_map_with_path(lambda p, _: any(match(path_str(p))), tree)


def decay_mask(params):
    """A tree of bools shaped like ``params``: True for kernels (leaves with 2 or more dimensions), False for
    biases, norm scales and other vectors: ``optax.adamw(lr, weight_decay=wd, mask=decay_mask)`` decays
    only the kernels."""
    return jax.tree.map(lambda a: np.ndim(a) > 1, params)


def freeze(optimizer: optax.GradientTransformation, patterns: Patterns, *, regex: bool = False):
    """``optimizer`` for the leaves whose path does not match ``patterns``; matched leaves get zero updates.

    Built with ``optax.partition`` (``optax.set_to_zero`` on the frozen part), so frozen leaves keep
    no optimiser state. Patterns as in :func:`path_mask`; a pattern that matches no parameter is an
    error (raised by ``init``), since a typo would otherwise silently train everything.
    """
    pats, match = _matcher(patterns, regex)

    def labels(params):
        paths = leaf_paths(params)
        hits = [match(p) for p in paths]
        unused = [pat for j, pat in enumerate(pats) if not any(h[j] for h in hits)]
        if unused:
            raise ValueError(f"freeze: {unused} match no parameter path; paths are {paths}")
        treedef = jax.tree.structure(params)
        return jax.tree.unflatten(treedef, ["frozen" if any(h) else "trained" for h in hits])

    return optax.partition({"trained": optimizer, "frozen": optax.set_to_zero()}, labels)


# ----------------------------------------------------------------------------- summary

def _fmt_spec(spec) -> str:
    specs = jax.tree.leaves(spec)
    return ", ".join(f"{tuple(s.shape)} {np.dtype(s.dtype).name}" for s in specs)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _layer_rows(lay: Layer, name: str, spec, key, depth: int, rows: list) -> Any:
    """Append one row per layer (depth-first, model order); return ``lay``'s output spec."""
    out, params, state = lay.init(key, spec)
    row = {"name": "  " * depth + name, "out": _fmt_spec(out), "leaves": [], "count": param_count(params)}
    rows.append(row)
    if lay.children:
        child_spec, seen = spec, getattr(lay.init, "child_specs", None)  # compose: each child's own input spec
        seen = seen(spec) if seen is not None else {}
        for child_name, child in lay.children:
            child_spec = seen.get(child_name, child_spec)
            child_out = _layer_rows(child, child_name, child_spec, key, depth + 1, rows)
            if lay.name == "serial":  # a serial chains its children; other combinators fan the input out
                child_spec = child_out
    else:
        for kind, tree in (("", params), ("state ", state)):
            for path, leaf in flatten_dict(tree).items():
                row["leaves"].append(f"{kind}{path} {tuple(leaf.shape)} {np.dtype(leaf.dtype).name}")
    return out


def summary(model: Layer, key: Any, spec) -> str:
    """A printable table of ``model`` built for input ``spec``, computed abstractly (no arrays allocated).

    One row per layer in model order, indented by nesting: its name inside its parent, its output
    shape and dtype, its parameter and state leaves (path, shape, dtype) and its parameter count
    (a combinator's count covers its children). The footer gives the input and output specs and the
    parameter and state totals. ``key`` may be ``None`` (shapes do not depend on it).
    """
    spec = as_spec(spec)
    key = jax.random.PRNGKey(0) if key is None else key
    rows, out = [], {}

    def build(k):
        out["spec"] = _layer_rows(model, model.name, spec, k, 0, rows)
        return model.init(k, spec)[1:]

    params, state = jax.eval_shape(build, key)
    table = [("layer", "output", "parameters", "count")]
    for r in rows:
        leaves = r["leaves"] or [""]
        table.append((r["name"], r["out"], leaves[0], f"{r['count']:,}" if r["count"] or r["leaves"] else ""))
        table.extend(("", "", leaf, "") for leaf in leaves[1:])
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(t, widths))).rstrip()
             for t in table]
    rule = "-" * len(max(lines, key=len))
    n_params, n_state = param_count(params), param_count(state)
    p_bytes = sum(_size(v) * np.dtype(v.dtype).itemsize for v in jax.tree.leaves(params))
    s_bytes = sum(_size(v) * np.dtype(v.dtype).itemsize for v in jax.tree.leaves(state))
    footer = [f"input   {_fmt_spec(spec)}",
              f"output  {_fmt_spec(out['spec'])}",
              f"params  {n_params:,} ({_bytes(p_bytes)})",
              f"state   {n_state:,} ({_bytes(s_bytes)})"]
    return "\n".join([rule, lines[0], rule, *lines[1:], rule, *footer])

__all__ = ["param_count", "path_str", "leaf_paths", "flatten_dict", "unflatten_dict", "get_path", "set_path",
           "path_mask", "freeze", "summary"]
