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
    ``children`` is a tuple of ``(child_name, Layer)`` pairs in model order, where ``child_name`` is the key of
    that child's entry in this layer's ``params``/``state`` dicts (absent when the child has none), e.g.
    ``(("conv_0", conv), ("relu_0", relu))``. ``tree.summary`` and ``interpret.capture`` walk it; ``apply``
    never reads it. Build layers with :func:`layer` so that shape errors carry their path, and with
    :func:`deepcore.layers.compose` when a layer is made of named sub-layers.
    """

    init: Callable[..., tuple]
    apply: Callable[..., tuple]
    name: str = "layer"
    children: tuple = ()  # ((name, Layer), ...) for combinators; read by tree.summary, never by apply
    axes: Any = None      # logical axis names of params: a dict mirroring them, or params -> such a dict


def layer(name: str, init: Callable, apply: Callable, children=(), *, pair_x_rank: Optional[int] = None,
          axes: Any = None) -> Layer:
    """Make a :class:`Layer`, wrapping ``init`` and ``apply`` so their shape errors name this layer.

    The outermost ``apply`` of a call also checks that ``params`` has the tree structure and shapes that
    ``init`` builds for this input (:mod:`deepcore.paramcheck`): against the parameters ``init`` built for an
    input of this shape, else against ``init`` traced abstractly (once per input shape); at trace time
    under ``jit``. When a layer's own shape check fails, its message stands unless a parameter of another
    layer differs.

    ``pair_x_rank``: the layer takes an ``(x, labels)`` pair, ``x`` with ``pair_x_rank`` dims per example and
    integer ``labels`` of ``x``'s leading (batch) shape; ``init`` gets the pair of specs and ``apply`` is
    called as ``apply(params, state, x, labels, *, key, train)``. Anything else is a :class:`ShapeError`.

    ``axes``: the logical axis names of this layer's parameters (read by
    :func:`deepcore.layers.logical.logical_axes`, never by ``init``/``apply``).
    """
    from deepcore import paramcheck  # (it imports this module)

    guard, nested = paramcheck.ParamGuard(), paramcheck.nested
    to_spec, call = (as_spec, apply) if pair_x_rank is None else (_pair_spec, _pair_apply(apply, pair_x_rank))

    def wrapped_init(key, spec):
        outermost = not paramcheck.depth()
        with nested():
            try:
                out = init(key, to_spec(spec))
            except ShapeError as e:
                raise e.rooted(name) from None
        if outermost:
            guard.built(spec, out[1])
        return out

    guard.init = wrapped_init

    def wrapped_apply(params, state, x, *, key=None, train=False):
        outermost = not paramcheck.depth()   # only the outermost apply checks the parameters
        verdict = (lambda e: guard.verdict(params, x, e)) if outermost else (lambda e: e)
        with nested():
            try:
                out = call(params, state, x, key=key, train=train)
            except ShapeError as e:
                raise verdict(e).rooted(name) from None
            except Exception:
                bad = verdict(None)   # e.g. a jnp shape error deep inside: a parameter that does not fit
                if bad is not None:   # is the better account
                    raise bad.rooted(name) from None
                raise
        bad = verdict(None)
        if bad is not None:
            raise bad.rooted(name) from None
        return out

    wrapped_init.__name__, wrapped_apply.__name__ = f"{name}_init", f"{name}_apply"
    return Layer(wrapped_init, wrapped_apply, name, tuple(children), _frozen(axes))


def _pair_apply(apply: Callable, x_rank: int) -> Callable:
    """``apply(params, state, x, labels, *, key, train)`` of a pair-input layer as a one-input apply of ``(x,
    labels)`` (checked by :func:`_labelled_pair`)."""
    def call(params, state, xy, *, key=None, train=False):
        return apply(params, state, *_labelled_pair(xy, x_rank), key=key, train=train)

    return call

class _FrozenDict(dict):
    """A dict that hashes by its items: a layer's ``axes`` keep :class:`Layer` hashable, so a layer can be a
    static argument of ``jax.jit`` (as ``interpret.member_probs`` passes it)."""

    def __hash__(self):
        return hash(tuple(sorted(self.items())))


def _frozen(axes):
    if isinstance(axes, dict):
        return _FrozenDict({k: _frozen(v) for k, v in axes.items()})
    return tuple(axes) if isinstance(axes, list) else axes


def _is_pair(v) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2


def _pair_spec(spec):
    if not _is_pair(spec):
        raise ShapeError(f"expected an (x, labels) pair, got {spec!r}")
    return as_spec(spec[0]), as_spec(spec[1])


def _labelled_pair(xy, x_rank: int):
    """``(x, labels)`` from a pair input, ``labels`` checked to be integers of ``x``'s leading shape."""
    if not _is_pair(xy):
        raise ShapeError("expected an (x, labels) pair")
    x, y = xy
    lead = tuple(x.shape[:x.ndim - x_rank])
    if not jnp.issubdtype(y.dtype, jnp.integer) or tuple(y.shape) != lead:
        raise ShapeError(f"expected integer labels of shape {lead} for x of shape {tuple(x.shape)}, "
                         f"got {y.dtype} {tuple(y.shape)}")
    return x, y


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


def accum_dtype(dtype):
    """The dtype statistics and softmaxes accumulate in: ``dtype`` when it has 32 bits or more, else float32
    (bfloat16/float16 inputs; explicit, so it holds under ``jax_numpy_dtype_promotion="strict"``)."""
    d = jnp.dtype(dtype)
    return d if jnp.issubdtype(d, jnp.floating) and d.itemsize >= 4 else jnp.dtype(jnp.float32)


def implicit_promotion():
    """A context in which ``jnp`` promotes dtypes implicitly (``"standard"``), around third-party code that
    relies on it: optax's bias correction raises a float ``decay`` to an int32 ``count``, and
    ``jax.nn.dot_product_attention``'s XLA path mixes bfloat16 logits with float32. deepcore's own code is
    proven under ``jax_numpy_dtype_promotion="strict"`` (the test suite runs under it)."""
    return jax.numpy_dtype_promotion("standard")


def left_expand(v, ndim: int):
    """``v`` with leading length-1 axes up to ``ndim`` dimensions (``(F,) -> (1, ..., 1, F)``): the explicit form
    of NumPy's rank promotion, so that ``y + left_expand(b, y.ndim)`` states its shapes (the test suite runs
    under ``jax_numpy_rank_promotion="raise"``)."""
    return jnp.expand_dims(v, tuple(range(ndim - jnp.ndim(v))))


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
