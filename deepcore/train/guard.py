"""The non-finite guard on a whole state: which floating arrays hold a NaN or an infinity.

``nonfinite_paths(state)`` runs one compiled reduction (one boolean per floating leaf, nothing else
comes back to the host) and returns the paths of the bad leaves, e.g. ``["params/dense_0/w",
"opt_state/0/mu/dense_0/w"]``; ``[]`` when everything is finite. The loop calls it before every
checkpoint, before every evaluation and before returning a state, so the cost is one pass over the
state per checkpoint, never per step (the compiled train step is unchanged).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _is_float(leaf) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)


@jax.jit
def _finite_flags(leaves: list) -> jax.Array:
    """``(n_leaves,)`` bool: whether every element of each leaf is finite."""
    return jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves])


def nonfinite_paths(tree) -> list:
    """Paths (``"params/dense_0/w"``) of the floating leaves of ``tree`` holding a NaN or an infinity."""
    from deepcore.train.parallel import fetch

    flat = [(path, leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if _is_float(leaf)]
    if not flat:
        return []
    flags = np.asarray(fetch(_finite_flags([leaf for _, leaf in flat])))
    return [jax.tree_util.keystr(path, simple=True, separator="/") for (path, _), ok in zip(flat, flags) if not ok]


def describe(paths: list, limit: int = 3) -> str:
    """``"params/dense_0/w, opt_state/0/mu/dense_0/w and 2 more"``."""
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
