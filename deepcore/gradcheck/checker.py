"""Finite-difference checks of JAX derivatives for any function of pytrees.

:func:`check_grads` flattens the differentiated floating leaves of the chosen arguments into one
vector ``theta`` (integer, boolean and key leaves are kept fixed and listed as skipped), reduces the
output to a scalar ``<u, f(theta)>`` with a fixed random cotangent ``u`` (unless it is already a
scalar) and compares, per leaf:

* ``fast``: ``k`` random unit directions ``v`` per leaf; the reverse-mode ``<J^T u, v>`` and the
  forward-mode ``<u, J v>`` (a JVP) against a central difference. Cost depends on ``k`` and the number
  of leaves, never on the leaf sizes. A failing leaf is then bisected to name one wrong element.
* ``full``: coordinate directions: every element of a leaf with at most ``full_max`` elements,
  ``samples`` random elements of larger ones.
* ``fwd-rev``: the JVP against the VJP along random directions; exact, no finite differences.
* ``second``: Hessian-vector products by reverse-over-reverse and forward-over-reverse against
  central differences of the gradient.

Finite differences use a Richardson-extrapolated central difference (a five-point stencil) with a
step chosen per dtype and scaled by the norm of the point on the perturbed leaf. The same estimate at
``h/10`` and one-sided estimates at ``h`` detect kinks (ReLU at 0, max-pool ties, ``abs``): such a
point is reported as non-differentiable and the point is moved, instead of a false failure.
Every leaf's rows of a mode go through one compiled kernel call (:mod:`deepcore.gradcheck.problem`).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.gradcheck import modes as M
from deepcore.gradcheck.finite import RTOL1, RTOL2, STEP1
from deepcore.gradcheck.problem import Problem
from deepcore.gradcheck.progress import Progress
from deepcore.gradcheck.report import FAIL, Report

MODES = ("fast", "full", "fwd-rev", "second")


def _dtype_name(dtype) -> str:
    name = jnp.dtype(dtype).name
    if name not in STEP1:
        raise ValueError(f"gradcheck: dtype must be float64, float32, bfloat16 or float16, got {name}")
    return name


def _ctx(dtype_name):
    return jax.enable_x64(True) if dtype_name == "float64" else contextlib.nullcontext()


def _argnums(argnums, n_args: int) -> tuple:
    argnums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    for i in argnums:
        if not isinstance(i, (int, np.integer)) or not -n_args <= i < n_args:
            raise ValueError(f"gradcheck: argnums must be in [0, {n_args}) for a function of {n_args} "
                             f"argument{'s' if n_args != 1 else ''}, got {i!r}")
    return tuple(dict.fromkeys(int(i) % n_args for i in argnums))


def _check_options(dtype, modes) -> str:
    """The name of ``dtype`` after refusing unknown ``modes``; a warning (at the caller of ``check_grads``) when the
    dtype is not float64."""
    dt = _dtype_name(dtype)
    if dt != "float64":
        warnings.warn(f"gradcheck in {dt}: finite differences are imprecise in this dtype; tolerances widened "
                      f"to rtol={RTOL1[dt]:g} (first order), {RTOL2[dt]:g} (second order). "
                      f"Check in float64 (the default) for a tight verdict.", stacklevel=3)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"gradcheck: unknown modes {sorted(unknown)}; choose from {MODES}")
    return dt

def check_grads(f: Callable, args: Union[tuple, list, object], argnums: Union[int, Sequence[int]] = 0, *,
                argnames: Optional[Sequence[str]] = None, modes: Sequence[str] = MODES, k: int = 4,
                hvp_k: int = 2, full_max: int = 256, samples: int = 32, dtype=jnp.float64, seed: int = 0,
                has_aux: bool = False, max_moves: int = 3, locate: bool = True, jit: bool = True,
                name: Optional[str] = None, progress: Union[bool, Progress, None] = True) -> Report:
    """Check the derivatives of ``f(*args)`` with respect to ``args[i]`` for ``i`` in ``argnums``.

    ``f`` returns a pytree of float arrays (reduced to a scalar with a fixed random cotangent) or,
    with ``has_aux=True``, a pair ``(output, aux)`` whose ``aux`` (e.g. new model state) is ignored.
    ``argnames`` names the arguments in reported paths (default ``arg0``, ``arg1``, ...). Pass any
    randomness as a fixed key argument so every evaluation draws the same numbers.
    The check runs in ``dtype`` (float64 by default, with 64-bit mode enabled only for its duration;
    floating inputs are converted); other dtypes warn and use wider tolerances.
    ``progress``: a line on stderr every couple of seconds once the check has run 2 s (False: silent).
    Returns a :class:`~deepcore.gradcheck.report.Report` (``print(report)``: failures and one line
    per mode; ``report.table()``: every leaf); see :func:`assert_grads_ok` for tests.
    """
    dt = _check_options(dtype, modes)
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    argnums = _argnums(argnums, len(args))
    argnames = tuple(argnames) if argnames else tuple(f"arg{i}" for i in range(len(args)))
    rng = np.random.default_rng(seed)
    name = name or getattr(f, "__name__", "f")
    with _ctx(dt):
        dtype = jnp.dtype(dtype) if dt != "bfloat16" else jnp.bfloat16
        P = Problem(f, args, argnums, argnames, has_aux, dtype, rng, jit)
        report = Report(name, dt, skipped=P.skipped, evals=P.evals)
        if not P.leaves:
            return report
        L = len(P.leaves)
        prog = progress if isinstance(progress, Progress) else Progress(name, L * len(modes)) if progress else None
        P.progress = prog
        coords = {lf.path: (np.arange(lf.size) if lf.size <= full_max else
                            np.sort(rng.choice(lf.size, samples, replace=False))) for lf in P.leaves}
        results, runs = [], {}
        for j, mode in enumerate(modes):
            if prog:
                prog.phase(mode, j * L, L)
            if mode in ("fast", "full"):
                res, mode_runs = M.first_order(P, P.theta0, mode, dt, k=k, coords=coords, max_moves=max_moves,
                                               progress=prog)
                if mode == "fast":
                    runs = mode_runs
                    if locate:
                        _locate_failures(P, res, mode_runs, dt, prog)
                results += res
            elif mode == "fwd-rev":
                results += M.fwd_rev(P, P.theta0, k, dt, runs)
            elif mode == "second":
                results += M.second_order(P, P.theta0, hvp_k, dt, max_moves)
        if prog:
            prog.close()
        report.results = results
    return report


def _locate_failures(P, results, runs, dt, prog) -> None:
    """Bisect each failure with numbers of the fast mode to the wrong element (``result.where``)."""
    for r in results:
        if r.verdict == FAIL and r.checks:
            nm = r.mode.split("/")[1]
            if prog:
                prog.note(f"locating the wrong element of {r.path} ({r.mode})")
            lr = runs[r.path]
            r.where = lr.leaf.where(M.locate(P, lr, nm, dt))


def assert_grads_ok(f: Callable, args, argnums=0, **kw) -> Report:
    """:func:`check_grads`, raising ``AssertionError`` with the failures and per-mode summary when anything fails."""
    report = check_grads(f, args, argnums, **kw)
    if not report.ok:
        raise AssertionError("gradient check failed:\n" + str(report))
    return report
