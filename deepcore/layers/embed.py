"""Token embeddings: integer ids ``(...) -> (..., features)`` (:func:`embed`, :func:`Embedding`), and the tied
output head (:func:`embed_attend`)."""
import jax
import jax.numpy as jnp
import numpy as np

from deepcore import initializers
from deepcore.core import Layer, ShapeError, layer, output_spec, param_dtype_for


def Embedding(vocab_size: int, features: int, *, w_init=initializers.normal(1.0), param_dtype=None,
              dtype=None) -> Layer:
    """The layer of :func:`embed`: a table ``w: (vocab_size, features)``; ids ``(...)`` -> ``(..., features)``.

    Ids must be integers in ``[0, vocab_size)``: concrete ids outside it raise :class:`ShapeError` naming the
    first one; traced ids (under ``jit``) cannot raise, and look up NaN vectors instead (never a clamped row).
    ``w_init`` defaults to N(0, 1) (PyTorch's default); GPT-2 style models pass ``initializers.normal(0.02)``.
    ``param_dtype`` defaults to float32 (the input is integer); the output dtype is ``dtype`` or the table's.
    """

    def init(key, spec):
        _check_ids(spec)
        pdt = param_dtype_for(jnp.float32, param_dtype)
        params = {"w": w_init(key, (vocab_size, features), pdt)}
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        return embed(params, x, dtype=dtype), state

    return layer("embedding", init, apply, axes={"w": ("vocab", "embed")})


def embed(params, ids, *, dtype=None):
    """Rows of the table ``params["w"]: (V, D)`` for integer ``ids: (...)`` -> ``(..., D)``, in ``dtype``
    (default the table's); bad ids as in :func:`lookup`."""
    _check_ids(ids)
    w = params["w"]
    if dtype is not None:
        w = w.astype(dtype)
    return lookup(w, ids)


def lookup(w, ids):
    """Rows ``w[ids]``: ``w: (V, D)``, int ``ids: (...)`` -> ``(..., D)``; ids outside ``[0, V)`` raise
    :class:`ShapeError` when concrete, and give NaN rows when traced."""
    v = w.shape[0]
    if not isinstance(ids, jax.core.Tracer):
        host = np.asarray(ids)
        bad = (host < 0) | (host >= v)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ShapeError(f"expected token ids in [0, {v}), got {int(host[at])} at index {at}")
    ids = jnp.where((ids >= 0) & (ids < v), ids, v)  # negative ids would wrap: send them out of range too
    return jnp.take(w, ids, axis=0, mode="fill", fill_value=jnp.nan)


def _check_ids(x):
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ShapeError(f"expected integer ids (...), got {jnp.dtype(x.dtype).name} input of shape {tuple(x.shape)}")


def embed_attend(params, x):
    """The tied output head: ``x: (..., features) -> logits (..., vocab_size)`` as ``x @ w.T``.

    ``params`` are an :func:`Embedding`'s; the table is cast to ``x.dtype``.
    """
    w = params["w"]
    if x.shape[-1] != w.shape[1]:
        raise ShapeError(f"embed_attend: expected input (..., {w.shape[1]}), got {tuple(x.shape)}")
    return jnp.matmul(x, w.astype(x.dtype).T)
