"""The checker's compile rule: a small kernel is compiled for compile speed, not run speed.

A gradient check of a small layer spends most of its time compiling (its kernels run for milliseconds).
:func:`jit` lowers each input signature once, asks XLA's cost analysis for the program's floating-point
operations, and compiles a program under :data:`SMALL_FLOPS` of a check of fewer than :data:`SMALL_N` numbers
with :data:`FAST_COMPILE`, others with XLA's defaults (:data:`FULL_COMPILE`, given explicitly so that they
hold where ``XLA_FLAGS`` make the fast options a process's defaults). :data:`FAST_COMPILE` turns off XLA:CPU's LLVM
optimisation (``xla_backend_optimization_level=0``) and its MLIR fusion emitters
(``xla_cpu_use_fusion_emitters=False``: fusions go through XLA's older elemental emitter): the same HLO passes
and the same operations, compiled about 5x faster (each option alone: less than 2x). Convolutions and dots are
library calls either way; what it slows is elementwise loops, and a check of many numbers runs loops over all of
them per row (forming points, drawing directions), hence :data:`SMALL_N`. XLA counts a loop's body once (the
directional kernel's: one group of rows), so a scanned model whose body is small is compiled the fast way
whatever its trip count. The exception is a large check whose rows run singly, each on one leaf (the leafwise
kernel): its call says how many numbers its rows touch in all (``work``), and under :data:`SMALL_WORK` it is compiled
the fast way whatever ``n`` (measured on a 10M-parameter MLP: slower loops cost about 5 ns per number touched,
the fast compile saves about 0.3 s); such a kernel holds a copy of the model per large leaf, so its LLVM code is
split over the machine's cores (:func:`parallel`: compile 14-15% faster on two cores). Measured in BUILD_NOTES
(issue 20). ``DEEPCORE_GRADCHECK_FAST_COMPILE=0`` compiles
everything with XLA's defaults. :data:`COUNTS` records how many programs took each way (a test and the
benchmark read it).
"""
from __future__ import annotations

import collections
import os
from typing import Callable

import jax
from jax import monitoring

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
# XLA:CPU's own defaults, given explicitly to the programs the rule keeps on them, so that they stay optimised in
# a process whose XLA_FLAGS make the fast options its defaults (the CLI's workers)
FULL_COMPILE = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
ENABLED = os.environ.get("DEEPCORE_GRADCHECK_FAST_COMPILE", "1") != "0"
SMALL_FLOPS = 1e9          # below this (XLA's estimate for one call), compile without LLVM optimisation
SMALL_N = 10 ** 6          # ... when the check has fewer numbers than this
SMALL_WORK = 6 * 10 ** 7   # ... or when a call says its rows touch fewer numbers than this in all (leafwise rows)
MAX_SPLIT = 8              # at most this many parts of LLVM code compiled at once (:func:`parallel`)
COUNTS: collections.Counter = collections.Counter()   # "fast" / "default": programs compiled each way


def _signature(args):
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False)))
                          if hasattr(a, "shape") else ("py", a) for a in leaves)


def active() -> bool:
    """Whether the rule applies in this process: on (:data:`ENABLED`) and compiling for a CPU."""
    return ENABLED and jax.default_backend() == "cpu"


def _flops(lowered) -> float:
    try:
        return float((lowered.cost_analysis() or {}).get("flops", float("inf")))
    except Exception:   # no cost analysis for this program: count it as large
        return float("inf")


def parallel() -> dict:
    """The option that splits a program's LLVM code into one part per core available to this process (at most
    :data:`MAX_SPLIT`), compiled at once: for the fast-compiled kernel of a large check, whose code generation is
    about half of its compile; small programs stay whole (the CLI runs one worker per core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"xla_cpu_parallel_codegen_split_count": min(MAX_SPLIT, cores)} if cores > 1 else {}


def is_fast(options: dict) -> bool:
    """Whether ``options`` are the fast ones (:data:`FAST_COMPILE`, with or without :func:`parallel`)."""
    return all(options.get(k) == v for k, v in FAST_COMPILE.items())


def options_for(lowered, n: int = 0, work=None, flops=None) -> dict:
    """The compile options of one lowered program of a check of ``n`` numbers on a CPU: :data:`FAST_COMPILE`
    when its flops are small and so is ``n`` (or ``work``, the numbers its rows touch in all, where the call
    gives it; then with :func:`parallel` code generation too), else :data:`FULL_COMPILE`; none with the rule off
    or on another backend."""
    if not active():
        return {}
    flops = _flops(lowered) if flops is None else flops
    if flops >= SMALL_FLOPS:
        return dict(FULL_COMPILE)
    if n < SMALL_N:
        return dict(FAST_COMPILE)
    return dict(FAST_COMPILE, **parallel()) if work is not None and work < SMALL_WORK else dict(FULL_COMPILE)


class _Jit:
    """``fn`` jitted, each input signature lowered once and compiled with :func:`options_for`'s options. A call
    whose ``work`` is too large for a fast-compiled executable of its signature gets one with the full options;
    once that exists, every call of the signature uses it."""

    def __init__(self, fn: Callable, n: int):
        self.jitted, self._cache, self.n = jax.jit(fn), {}, n

    def __call__(self, *args, work=None):
        """``fn(*args)``; ``work``: the numbers the call's rows touch in all, for the rule."""
        sig = _signature(args)
        if sig not in self._cache:
            lowered = self.jitted.lower(*args)
            self._cache[sig] = (lowered, _flops(lowered) if active() else 0.0, {})
        lowered, flops, exes = self._cache[sig]
        options = options_for(lowered, self.n, work, flops)
        fast = is_fast(options)
        key = "fast" if fast and "full" not in exes else "full"
        if key not in exes:
            exes[key] = compile_lowered(lowered, options)
        return exes[key](*args)


def compile_lowered(lowered, options=None, n: int = 0):
    """``lowered.compile`` with ``options`` (default: :func:`options_for`'s), counted in :data:`COUNTS`."""
    options = options_for(lowered, n) if options is None else options
    COUNTS["fast" if is_fast(options) else "default"] += 1
    try:
        return lowered.compile(compiler_options=options) if options else lowered.compile()
    except Exception:
        if not options:
            raise
        return lowered.compile()   # an XLA without the options: its defaults


def jit(fn: Callable, n: int = 0) -> Callable:
    """``jax.jit(fn)`` for a check of ``n`` numbers, its executables compiled by the rule above (call it with
    concrete arrays only)."""
    return _Jit(fn, n)


CACHE: collections.Counter = collections.Counter()   # "hits" / "misses" of the persistent cache in this process
_EVENTS = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}
_listening = []


def persistent_cache(directory: str) -> None:
    """Keep this process's compiled programs in JAX's persistent compilation cache at ``directory`` (its own
    ``jax_compilation_cache_dir``), with the min-compile-time and min-size thresholds off so the checker's small
    programs (0.05-2 s compiles) are kept too; a later process with the same directory loads them instead of
    compiling. Call before the first compile of the process. :data:`CACHE` counts hits and misses."""
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if not _listening:
        monitoring.register_event_listener(lambda event, **kw: CACHE.update([_EVENTS[event]]) if event in _EVENTS
                                           else None)
        _listening.append(True)
