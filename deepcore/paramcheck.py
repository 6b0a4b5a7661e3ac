"""The parameter check of :func:`deepcore.core.layer`: ``apply`` refuses parameters that do not fit the model.

The outermost ``apply`` of a call (inner layers skip it) compares the parameter tree (paths and shapes, not
dtypes: mixed precision casts them) with what the model's ``init`` builds for an input of this shape: the
shapes an outermost ``init`` of the same layer recorded for it, else ``init`` traced abstractly
(``jax.eval_shape``, once per input shape). Under ``jit`` all of this happens at trace time: the compiled
step does no extra work. Parameter/input shape pairs that passed are remembered, so an eager ``apply``
pays a tree flatten. The first differing path is raised as :class:`deepcore.core.ShapeError`::

    serial/dense_1/b: expected a parameter of shape (10,), got (1024,)

Inputs ``init`` cannot describe (it raises on their spec) are not checked: ``apply`` reports on them.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.core import ShapeError, Spec, as_spec


class _Nesting(threading.local):
    depth = 0


_NESTING = _Nesting()
_KEY_SPEC = jax.ShapeDtypeStruct((2,), jnp.uint32)


def depth() -> int:
    """How many layer inits/applies this thread is inside (0: the next apply is the outermost)."""
    return _NESTING.depth


@contextlib.contextmanager
def nested():
    """Inside a layer's init or apply: inner layers skip the parameter check (the outermost does it)."""
    _NESTING.depth += 1
    try:
        yield
    finally:
        _NESTING.depth -= 1


def _path_shapes(tree) -> dict:
    """``{("dense_0", "w"): (784, 10), ...}`` for every array leaf of ``tree``, in flattening order."""
    def part(k):
        return str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
    return {tuple(part(k) for k in path): tuple(np.shape(v)) for path, v in jax.tree_util.tree_leaves_with_path(tree)}


def _expected(init: Callable, x) -> Optional[dict]:
    """The parameter shapes ``init`` builds for an input like ``x`` (None if it cannot describe ``x``)."""
    try:
        spec = jax.tree.map(lambda a: Spec(np.shape(a), jnp.result_type(a)), x)
        return _path_shapes(jax.eval_shape(lambda k: init(k, spec)[1], _KEY_SPEC))
    except Exception:  # noqa: BLE001 - not describable by init: leave the verdict to apply
        return None


def _differences(want: Optional[dict], params) -> list:
    if want is None:
        return []
    got = _path_shapes(params)
    out = [ShapeError(f"expected a parameter of shape {shape}, got {got.get(path, 'none')}", path)
           for path, shape in want.items() if got.get(path) != shape]
    return out + [ShapeError(f"expected no parameter here (this model has none), got one of shape {shape}", path)
                  for path, shape in got.items() if path not in want]


def param_differences(init: Callable, params, x) -> list:
    """``[ShapeError, ...]``, one per parameter path where ``params`` differs (missing, extra, other shape)
    from what ``init(key, spec of x)`` builds; dtypes are not compared (mixed precision casts them).
    Empty when they agree, and for inputs ``init`` cannot describe (``apply`` reports on those)."""
    return _differences(_expected(init, x), params)


def check_params(init: Callable, params, x) -> None:
    """Raise the first of :func:`param_differences` (a :class:`ShapeError` naming the parameter path)."""
    diffs = param_differences(init, params, x)
    if diffs:
        raise diffs[0]


def _signature(tree):
    """A hashable key of a pytree's structure, shapes and dtypes (None if there is none)."""
    try:
        leaves, treedef = jax.tree.flatten(tree)
        sig = (treedef, tuple([(a.shape, a.dtype) for a in leaves]))
        hash(sig)
        return sig
    except Exception:  # noqa: BLE001 - leaves without shape/dtype, unhashable: not cached
        return None


class ParamGuard:
    """One layer's parameter check: expected shapes per input signature (from its inits, else traced), and
    the (parameter, input) signatures that passed. Each table is bounded."""

    def __init__(self):
        self.init, self.want, self.passed = None, {}, set()

    def built(self, spec, params):
        """Record the parameter shapes an outermost ``init`` built for ``spec``."""
        try:
            sig = _signature(as_spec(spec))
        except TypeError:  # a spec as_spec does not take (the layer's init raised already if it matters)
            return
        if sig is not None:
            _bounded(self.want)[sig] = _path_shapes(params)

    def verdict(self, params, x, error: Optional[ShapeError]) -> Optional[ShapeError]:
        """The error to raise: ``error`` (the layer's own; None when apply succeeded) unless a parameter
        outside the failing layer differs, then that parameter's, as the cause."""
        xsig, psig = _signature(x), _signature(params)
        key = (psig, xsig) if None not in (psig, xsig) else None
        if error is None and key in self.passed:
            return None
        if xsig is not None and xsig in self.want:
            want = self.want[xsig]
        else:
            want = _expected(self.init, x)
            if xsig is not None and want is not None:
                _bounded(self.want)[xsig] = want
        diffs = _differences(want, params)
        if error is not None and any(d.path[:len(error.path)] == error.path for d in diffs):
            return error  # the failing layer's own parameters differ: its account (in terms of the input) stands
        if diffs:
            return diffs[0]
        if key is not None:
            if len(self.passed) >= 256:
                self.passed.clear()
            self.passed.add(key)
        return error


def _bounded(table: dict, size: int = 64) -> dict:
    if len(table) >= size:
        table.clear()
    return table
