"""Predictions and exact evaluation over a whole split, in fixed-size batches (the last one padded).

::

    logits = predict(lambda state, x: model.apply(state.params, state.model_state, x)[0], test["image"], 500,
                     args=(state,), mesh=mesh)                               # (N, classes), numpy
    ev = evaluate_split(per_example_metrics, val, 500, args=(state,))        # {"loss": ..., "accuracy": ...}

Every batch has ``batch_size`` rows (one compilation per split); the last is padded by repeating row 0 and
the padding rows are cut from the outputs, so each example counts exactly once whatever the split size.
``fn`` must treat rows independently (eval mode: no batch statistics, no dropout). With a ``mesh`` the
batches are sharded over its devices (over the ``data``/``fsdp`` axes of a mesh of several axes; ``batch_size``
is rounded up to a multiple of the device count); in a multi-process run every process passes the whole split
and gets every prediction back.
"""
from __future__ import annotations

import weakref
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.train import parallel, sharding
from deepcore.train.step import compile_fn

_compiled = weakref.WeakKeyDictionary()   # fn -> {options key: compiled fn}: one compilation per fn and signature


def _jitted(fn: Callable, compiler_options: Optional[dict]) -> Callable:
    key = None if compiler_options is None else tuple(sorted(compiler_options.items()))
    try:
        per_fn = _compiled.setdefault(fn, {})
    except TypeError:                                        # not weakly referable: compiled for this call only
        per_fn = {}
    if key not in per_fn:
        per_fn[key] = compile_fn(fn, compiler_options=compiler_options)
    return per_fn[key]


def _rows(data) -> int:
    sizes = {np.shape(a)[0] for a in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"predict: the arrays must share their first dimension, got sizes {sorted(sizes)}")
    return sizes.pop()


def _shard(rows, mesh):
    """Rows over a 1-D ``data`` mesh, or over any mesh by the ``"batch"`` rule of the default rule set (its
    ``data``/``fsdp`` axes; replicated over the others, e.g. ``tensor``)."""
    if tuple(mesh.axis_names) == (parallel.DATA,):
        return parallel.shard_batch(rows, mesh)
    return sharding.shard_batch(rows, sharding.batch_sharding(mesh))


def _check_rows(out, batch_size: int) -> None:
    for path, a in jax.tree_util.tree_leaves_with_path(out):
        if np.ndim(a) == 0 or np.shape(a)[0] != batch_size:
            raise ValueError(f"predict: output{jax.tree_util.keystr(path)}: expected one row per example (leading "
                             f"axis {batch_size}, the batch size), got shape {np.shape(a)}")


def predict(fn: Callable, arrays_or_x, batch_size: int, *, args: tuple = (), mesh=None,
            compiler_options: Optional[dict] = None):
    """``fn(*args, batch) -> outputs`` over every row of ``arrays_or_x`` (an array ``(N, ...)`` or a dict of
    arrays sharing ``N``), jitted, in batches of ``batch_size``: outputs (a pytree of numpy arrays) with
    ``N`` rows, in order. ``args`` (e.g. the train state) are passed to the compiled ``fn`` as arguments,
    not baked in as constants. ``compiler_options``: as :func:`deepcore.train.compile_fn` (None: the rule)."""
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    n = _rows(arrays_or_x)
    if n == 0:
        raise ValueError("predict: no rows to predict")
    if mesh is not None:
        batch_size = -(-batch_size // mesh.size) * mesh.size
    run = _jitted(fn, compiler_options)
    outs = []
    for lo in range(0, n, batch_size):
        idx = np.arange(lo, lo + batch_size)
        idx[idx >= n] = 0                                    # padding: repeats of row 0, cut below
        batch = jax.tree.map(lambda a: np.asarray(a)[idx], arrays_or_x)
        if mesh is not None:
            batch = _shard(parallel.process_rows(batch), mesh)
        outs.append(parallel.fetch(run(*args, batch)))
        if lo == 0:
            _check_rows(outs[0], batch_size)
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outs)


def evaluate_split(fn: Callable, arrays, batch_size: int, *, args: tuple = (), mesh=None, prefix: str = "",
                   compiler_options: Optional[dict] = None) -> dict:
    """The exact mean over every example of a split of ``fn(*args, batch) -> {name: per-example values (B,)}``
    (e.g. the cross-entropy and correctness of each example): ``{prefix + name: float}``, averaged in float64
    on the host; padding rows weigh nothing. Batching, ``mesh`` and ``args`` as :func:`predict`."""
    values = predict(fn, arrays, batch_size, args=args, mesh=mesh, compiler_options=compiler_options)
    return {prefix + name: float(np.mean(np.asarray(v, np.float64))) for name, v in values.items()}


def flip_averaged(logits_fn: Callable) -> Callable:
    """Flip test-time augmentation: ``images (N, H, W, C) -> (N, classes)``, the log of the mean of the class
    probabilities ``logits_fn`` gives each image and its left-right mirror."""

    def apply(images):
        views = jnp.stack([jax.nn.log_softmax(logits_fn(images)), jax.nn.log_softmax(logits_fn(images[:, :, ::-1]))])
        return jax.nn.logsumexp(views, axis=0) - jnp.log(2.0)

    return apply


__all__ = ["predict", "evaluate_split", "flip_averaged"]


def classifier_eval(model, *, compute_dtype=None, tta: bool = False, x: str = "image", y: str = "label"):
    """``(logits, per_example)`` of a classifier for :func:`predict` and :func:`evaluate_split`.

    ``logits(state, images) -> (B, K)`` float32, eval mode, in ``compute_dtype`` (parameters cast to it;
    ``None``: as they are); ``tta``: log-probabilities averaged with the left-right mirror
    (:func:`flip_averaged`). ``per_example(state, batch) -> {"loss": (B,) cross-entropy, "accuracy": (B,)}``.
    """
    import optax

    from deepcore.core import cast

    def logits(state, images):
        params = state.params if compute_dtype is None else cast(state.params, compute_dtype)
        fn = lambda v: model.apply(params, state.model_state, v, train=False)[0].astype(jnp.float32)  # noqa: E731
        return flip_averaged(fn)(images) if tta else fn(images)

    def per_example(state, batch):
        out = logits(state, batch[x])
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(out, batch[y]),
                "accuracy": jnp.argmax(out, -1) == batch[y]}

    return logits, per_example
