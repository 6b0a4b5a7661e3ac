"""Finite-difference estimates, tolerances per dtype, and the per-check verdicts built from them.

The stencil evaluates ``f(t + c h v)`` for the eight coefficients ``c`` in :data:`STENCIL`; from those
values (shape ``(m, 8, ...)``) :func:`estimates` gives Richardson-extrapolated central differences at
``h`` and ``h/10`` and one-sided ones at ``h``, whose disagreement marks a kink (ReLU at 0, max-pool
ties, ``abs``) instead of a failure.
"""
from __future__ import annotations

import numpy as np

from deepcore.gradcheck.report import FAIL, KINK, NA, PASS, LeafResult

# step base (relative to max(1, |point|)), first-order rtol, second-order rtol, exact rtol, per dtype
STEP1 = {"float64": 1e-5, "float32": 1e-2, "bfloat16": 1e-1, "float16": 1e-1}
STEP2 = {"float64": 1e-4, "float32": 3e-2, "bfloat16": 1e-1, "float16": 1e-1}
RTOL1 = {"float64": 1e-6, "float32": 2e-2, "bfloat16": 2e-1, "float16": 2e-1}
RTOL2 = {"float64": 1e-5, "float32": 5e-2, "bfloat16": 3e-1, "float16": 3e-1}
RTOL0 = {"float64": 1e-9, "float32": 1e-4, "bfloat16": 3e-2, "float16": 3e-2}
STENCIL = np.array([1.0, -1.0, 2.0, -2.0, 0.1, -0.1, 0.2, -0.2])
NOISE = 100.0  # rounding error of one evaluation, in units of eps * max|value|
FLOOR = 1e-4   # relative-error floor, as a fraction of the leaf's gradient norm (unit directions)


def estimates(F, f0, hs):
    """Richardson-extrapolated central differences at h and h/10, and one-sided ones at h.

    ``F``: (m, 8, ...) stencil values, ``f0``: the value at the centre, ``hs``: (m,) steps.
    """
    h = hs.reshape((-1,) + (1,) * (F.ndim - 2))
    s = h / 10
    R = (4 * (F[:, 0] - F[:, 1]) / (2 * h) - (F[:, 2] - F[:, 3]) / (4 * h)) / 3
    Rs = (4 * (F[:, 4] - F[:, 5]) / (2 * s) - (F[:, 6] - F[:, 7]) / (4 * s)) / 3
    fwd = (-3 * f0 + 4 * F[:, 0] - F[:, 2]) / (2 * h)
    bwd = (3 * f0 - 4 * F[:, 1] + F[:, 3]) / (2 * h)
    return R, Rs, fwd, bwd


def first_order(an, F, f0, hs, floor, rtol, eps):
    """Per direction: (abs err, rel err, kink?) of scalar derivatives ``an`` (m,) against the stencil ``F`` (m, 8)."""
    R, Rs, fwd, bwd = estimates(F, f0, hs)
    f0 = np.broadcast_to(np.abs(f0), R.shape)
    mag = np.maximum(np.abs(F).max(axis=1), f0)
    noise = NOISE * eps * mag / hs
    kink = (np.abs(R - Rs) > 0.25 * rtol * np.maximum(np.maximum(abs(R), abs(Rs)), floor) + 10 * noise) | (
        np.abs(fwd - bwd) > 0.25 * rtol * np.maximum(np.maximum(abs(fwd), abs(bwd)), floor) + 4 * noise)
    err = np.abs(an - R)
    rel = err / (np.maximum(np.maximum(np.abs(an), np.abs(R)), floor) + noise / rtol)
    return err, rel, kink


def result(mode, leaf, err, rel, where_idx, tol, kinks, kinked, note=""):
    """Summarise per-check errors (kinked checks excluded) into a :class:`LeafResult`."""
    good = ~kinked
    if not good.any():
        return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("nan"), leaf.path, tol, KINK,
                          kinks, 0, "only non-differentiable points found")
    i = int(np.argmax(np.where(good, rel, -1)))
    verdict = PASS if rel[i] <= tol else FAIL
    where = leaf.where(where_idx[i]) if where_idx is not None else leaf.path
    return LeafResult(mode, leaf.path, leaf.shape, float(err[good].max()), float(rel[i]), where, tol, verdict,
                      kinks, int(good.sum()), note)


def not_applicable(mode, leaf, why, fail=False):
    """A mode that cannot run: ``n/a`` (e.g. forward mode through a custom_vjp), or a failure when
    reverse mode itself raises (a gradient that cannot be taken is a broken gradient)."""
    if fail:
        return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("inf"), leaf.path, 0.0, FAIL, 0, 0,
                          "reverse-mode differentiation raised: " + why)
    return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("nan"), leaf.path, 0.0, NA, 0, 0, why)
