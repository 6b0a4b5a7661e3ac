"""The non-finite guard: a step's loss and gradient norm read one step late (:class:`StepGuard`), and
the whole state: which floating arrays hold a NaN or an infinity.

``nonfinite_paths(state)`` runs one compiled reduction (one boolean per floating leaf, nothing else
comes back to the host) and returns the paths of the bad leaves, e.g. ``["params/dense_0/w",
"opt_state/0/mu/dense_0/w"]``; ``[]`` when everything is finite. The loop calls it before every
checkpoint, before every evaluation and before returning a state, so the cost is one pass over the
state per checkpoint, never per step (the compiled train step is unchanged).
"""
from __future__ import annotations

from typing import Callable, Optional

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


def host_scalars(metrics: dict) -> dict:
    """A step's metrics on the host: floats (a population's per-member values: lists of floats)."""
    from deepcore.train.parallel import fetch

    out = {}
    for k, v in fetch(metrics).items():
        v = np.asarray(v)
        out[k] = float(v) if v.ndim == 0 else v.astype(float).tolist()
    return out


def state_problem(state, step: int) -> Optional[str]:
    """``"non-finite values in params/w after step 8"``, or None when the whole state is finite."""
    bad = nonfinite_paths(state)
    return f"non-finite values in {describe(bad)} after step {step}" if bad else None


class StepGuard:
    """Reads each step's metrics one step late (so the device keeps a step queued), hands them to
    ``on_read(host_metrics)`` and names a non-finite ``loss`` or ``grad_norm``."""

    def __init__(self, on_read: Callable[[dict], None] = lambda m: None):
        self.on_read, self.pending = on_read, None

    def read(self) -> Optional[str]:
        """Read the pending step's metrics now; the problem found, if any."""
        if self.pending is None:
            return None
        (step, metrics), self.pending = self.pending, None
        host = host_scalars(metrics)
        self.on_read(host)
        for name, what in (("loss", "loss"), ("grad_norm", "gradients")):
            if name in host and not np.all(np.isfinite(host[name])):
                return f"non-finite {what} ({name}={host[name]}) at step {step}"
        return None

    def after_step(self, step: int, metrics: dict, state, *, read: bool, whole: bool) -> Optional[str]:
        """The first problem among: the previous step's metrics; with ``read`` this step's too; with ``whole``
        (before a checkpoint or an evaluation) every floating array of ``state``."""
        bad, self.pending = self.read(), (step, metrics)
        if bad is None and read:
            bad = self.read()
        if bad is None and whole:
            bad = state_problem(state, step)
        return bad
