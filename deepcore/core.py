"""The layer protocol: specs, init/apply pairs, naming, shape errors and the dtype policy.

A layer is a :class:`Layer`, a pair of pure functions:

* ``init(key, spec) -> (out_spec, params, state)``: builds parameters and model state for an
  input described by ``spec`` (a ``jax.ShapeDtypeStruct``, an array, or a shape tuple meaning
  float32). The output spec is computed abstractly (``jax.eval_shape``), never on data.
* ``apply(params, state, x, *, key=None, train=False) -> (y, new_state)``: runs the layer.
  ``train`` and ``key`` are call-time arguments. Stateless layers return ``state`` unchanged.

Parameters and state are plain nested dicts of arrays. Nothing is global.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Spec = jax.ShapeDtypeStruct
Params = dict
State = dict


class ShapeError(ValueError):
    """A shape or dtype mismatch found while building a model.

    ``str(e)`` reads ``"serial/conv_2: expected input with 3 channels (..., H, W, 3), got (8, 28, 28, 1)"``:
    the path of the offending layer inside the model, then what was expected and what came.
    """

    def __init__(self, message: str, path: Sequence[str] = (), root: Optional[str] = None):
        self.message = message
        self.path = list(path)
        self.root = root
        super().__init__(self._text())

    def _text(self) -> str:
        where = "/".join(([self.root] if self.root else []) + self.path)
        return f"{where}: {self.message}" if where else self.message

    def within(self, child_name: str) -> "ShapeError":
        """The same error seen from the parent that named the failing child ``child_name``."""
        return ShapeError(self.message, [child_name] + self.path, None)

    def rooted(self, root: str) -> "ShapeError":
        return ShapeError(self.message, self.path, root)


class Layer(NamedTuple):
    """``init(key, spec) -> (out_spec, params, state)``; ``apply(params, state, x, *, key, train) -> (y, state)``.

    ``name`` is the layer's kind (``"dense"``, ``"conv"``); combinators number it (``dense_0``).
    ``children`` lists a combinator's named sub-layers (for summaries). Build layers with :func:`layer`
    so that shape errors carry their path.
    """

    init: Callable[..., tuple]
    apply: Callable[..., tuple]
    name: str = "layer"
    children: tuple = ()  # ((name, Layer), ...) for combinators; read by tree.summary, never by apply


def layer(name: str, init: Callable, apply: Callable, children=()) -> Layer:
    """Make a :class:`Layer`, wrapping ``init`` and ``apply`` so their shape errors name this layer.

    The outermost ``apply`` of a call also checks that ``params`` has the tree structure and shapes that
    ``init`` builds for this input (:func:`check_params`; at trace time under ``jit``, cached when eager).
    When a layer's own shape check fails, its message stands unless a parameter of another layer differs.
    """

    def wrapped_init(key, spec):
        with _nested():
            try:
                return init(key, as_spec(spec))
            except ShapeError as e:
                raise e.rooted(name) from None

    checked: dict = {}

    def wrapped_apply(params, state, x, *, key=None, train=False):
        outermost = not _NESTING.depth
        with _nested():
            try:
                out = apply(params, state, x, key=key, train=train)
            except ShapeError as e:
                raise (_check_after_apply(wrapped_init, params, x, checked, e) if outermost else e).rooted(name) \
                    from None
            except Exception:
                # e.g. a jnp shape error deep inside: name the parameter that does not fit, if one does not
                bad = _check_after_apply(wrapped_init, params, x, checked, None) if outermost else None
                if bad is not None:
                    raise bad.rooted(name) from None
                raise
            bad = _check_after_apply(wrapped_init, params, x, checked, None) if outermost else None
            if bad is not None:
                raise bad.rooted(name) from None
            return out

    wrapped_init.__name__, wrapped_apply.__name__ = f"{name}_init", f"{name}_apply"
    return Layer(wrapped_init, wrapped_apply, name, tuple(children))


# ----------------------------------------------------------------------------- parameter check

class _Nesting(threading.local):
    depth = 0


_NESTING = _Nesting()
_KEY_SPEC = jax.ShapeDtypeStruct((2,), jnp.uint32)


@contextlib.contextmanager
def _nested():
    """Inside a layer's init or apply: inner layers skip the parameter check (the outermost did it)."""
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


def param_differences(init: Callable, params, x) -> list:
    """``[ShapeError, ...]``, one per parameter path where ``params`` differs (missing, extra, other shape)
    from what ``init(key, spec of x)`` builds; dtypes are not compared (mixed precision casts them).

    Empty when they agree, and for inputs ``init`` cannot describe (``apply`` reports on those).
    """
    try:
        spec = jax.tree.map(lambda a: Spec(np.shape(a), jnp.result_type(a)), x)
        expected = jax.eval_shape(lambda k: init(k, spec)[1], _KEY_SPEC)
    except Exception:  # noqa: BLE001 - not describable by init: leave the verdict to apply
        return []
    want, got = _path_shapes(expected), _path_shapes(params)
    out = [ShapeError(f"expected a parameter of shape {shape}, got {got.get(path, 'none')}", path)
           for path, shape in want.items() if got.get(path) != shape]
    return out + [ShapeError(f"expected no parameter here (this model has none), got one of shape {shape}", path)
                  for path, shape in got.items() if path not in want]


def check_params(init: Callable, params, x) -> None:
    """Raise the first of :func:`param_differences` (a :class:`ShapeError` naming the parameter path)."""
    diffs = param_differences(init, params, x)
    if diffs:
        raise diffs[0]


def _signature(params, x):
    """A hashable key of the parameter and input shapes (None if there is none)."""
    try:
        p_leaves, p_def = jax.tree.flatten(params)
        x_leaves, x_def = jax.tree.flatten(x)
        sig = (p_def, tuple(np.shape(a) for a in p_leaves), x_def,
               tuple((np.shape(a), jnp.result_type(a)) for a in x_leaves))
        hash(sig)
        return sig
    except Exception:  # noqa: BLE001 - unhashable or exotic inputs: check every time
        return None


def _check_after_apply(init: Callable, params, x, cache: dict, error: Optional[ShapeError]):
    """The error the outermost apply raises: ``error`` (the layers' own, None if apply succeeded) unless a
    parameter outside the failing layer differs, then that parameter's (it is the cause)."""
    sig = _signature(params, x) if error is None else None
    if sig is not None and sig in cache:
        return None
    diffs = param_differences(init, params, x)
    if error is not None and any(d.path[:len(error.path)] == error.path for d in diffs):
        return error  # the failing layer's own parameters differ: its account (in terms of the input) stands
    if diffs:
        return diffs[0]
    if sig is not None:
        if len(cache) >= 64:
            cache.clear()
        cache[sig] = True
    return error


def as_spec(x: Any) -> Spec:
    """A ``ShapeDtypeStruct`` from a spec, an array or a shape tuple (float32)."""
    if isinstance(x, Spec):
        return x
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return Spec(tuple(x.shape), x.dtype)
    if isinstance(x, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in x):
        return Spec(tuple(int(d) for d in x), jnp.float32)
    raise TypeError(f"expected a jax.ShapeDtypeStruct, an array or a shape tuple, got {x!r}")


def output_spec(apply: Callable, params, state, spec: Spec) -> Spec:
    """The eval-mode output spec of ``apply`` for input ``spec``, computed without arithmetic."""
    return jax.eval_shape(lambda p, s, x: apply(p, s, x, key=None, train=False)[0], params, state, spec)


def simple_init(make: Callable, apply: Callable) -> Callable:
    """Turn ``make(key, spec) -> (params, state)`` into an ``init`` that also returns the output spec."""

    def init(key, spec):
        params, state = make(key, spec)
        return output_spec(apply, params, state, spec), params, state

    return init


# ----------------------------------------------------------------------------- dtype policy

def param_dtype_for(spec_dtype, param_dtype=None):
    """Parameter dtype: ``param_dtype`` if given, else the input's float32/float64, else float32.

    So a float64 model is built from a float64 input spec, while bfloat16 inputs still get float32
    parameters (mixed precision keeps master weights in float32).
    """
    if param_dtype is not None:
        return jnp.dtype(param_dtype)
    d = jnp.dtype(spec_dtype)
    return d if d in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)) else jnp.dtype(jnp.float32)


def compute_dtype_for(x_dtype, dtype=None):
    """Compute dtype: ``dtype`` if given, else the input's floating dtype (ints compute in float32)."""
    if dtype is not None:
        return jnp.dtype(dtype)
    d = jnp.dtype(x_dtype)
    return d if jnp.issubdtype(d, jnp.floating) else jnp.dtype(jnp.float32)


def cast(tree, dtype):
    """Cast every floating leaf of ``tree`` to ``dtype``."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


# ----------------------------------------------------------------------------- checks

def require_key(key, layer_name: str):
    """Raise a clear error when a layer that draws randomness in train mode got no key."""
    if key is None:
        raise ValueError(
            f"{layer_name}: train=True needs a PRNG key; call apply(params, state, x, key=key, train=True)"
        )
    return key


def check_min_rank(spec: Spec, rank: int, layout: str) -> None:
    """Raise :class:`ShapeError` unless ``spec`` has at least ``rank`` dims (``layout`` shows them)."""
    if len(spec.shape) < rank:
        raise ShapeError(f"expected input of shape {layout} with at least {rank} dims, got {tuple(spec.shape)}")


def check_last_dim(spec: Spec, size: int, what: str, layout: str) -> None:
    """Raise :class:`ShapeError` unless ``spec.shape[-1] == size``."""
    if spec.shape[-1] != size:
        raise ShapeError(f"expected input with {size} {what} {layout}, got {tuple(spec.shape)}")


def split_key(key, n: int):
    """``n`` independent keys from ``key`` (``None`` stays ``None``)."""
    if key is None:
        return [None] * n
    return [jax.random.fold_in(key, i) for i in range(n)]
