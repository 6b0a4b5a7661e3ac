"""The checker's compile rule: a small kernel is compiled with XLA's backend optimisation off.

A gradient check of a small layer spends most of its time compiling (its kernels run for milliseconds), and
XLA:CPU's LLVM optimisation is the larger part of a compile. :func:`jit` lowers each input signature once,
asks XLA's cost analysis for the program's floating-point operations, and compiles a program under
:data:`SMALL_FLOPS` with :data:`FAST_COMPILE` (``xla_backend_optimization_level=0``: same HLO passes, same
arithmetic, no LLVM optimisation), others with XLA's defaults. XLA counts a loop's body once, so a scanned
model whose body is small is compiled the fast way whatever its trip count. :data:`COUNTS` records how many
programs took each way (a test and the benchmark read it).
"""
from __future__ import annotations

import collections
from typing import Callable

import jax

FAST_COMPILE = {"xla_backend_optimization_level": 0}
SMALL_FLOPS = 1e8          # below this (XLA's estimate for one call), compile without LLVM optimisation
COUNTS: collections.Counter = collections.Counter()   # "fast" / "default": programs compiled each way


def _signature(args):
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False)))
                          if hasattr(a, "shape") else ("py", a) for a in leaves)


def options_for(lowered) -> dict:
    """The compile options of one lowered program: :data:`FAST_COMPILE` when it is small, else none."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        flops = float((lowered.cost_analysis() or {}).get("flops", float("inf")))
    except Exception:   # no cost analysis for this program: XLA's defaults
        return {}
    return dict(FAST_COMPILE) if flops < SMALL_FLOPS else {}


class _Jit:
    """``fn`` jitted, each input signature lowered once and compiled with :func:`options_for`'s options."""

    def __init__(self, fn: Callable):
        self.jitted, self._cache = jax.jit(fn), {}

    def __call__(self, *args):
        sig = _signature(args)
        exe = self._cache.get(sig)
        if exe is None:
            exe = self._cache[sig] = compile_lowered(self.jitted.lower(*args))
        return exe(*args)


def compile_lowered(lowered, options=None):
    """``lowered.compile`` with ``options`` (default: :func:`options_for`'s), counted in :data:`COUNTS`."""
    options = options_for(lowered) if options is None else options
    COUNTS["fast" if options else "default"] += 1
    try:
        return lowered.compile(compiler_options=options) if options else lowered.compile()
    except Exception:
        if not options:
            raise
        return lowered.compile()   # an XLA without the option: its defaults


def jit(fn: Callable) -> Callable:
    """``jax.jit(fn)`` whose executables are compiled by the rule above (called with concrete arrays only)."""
    return _Jit(fn)
