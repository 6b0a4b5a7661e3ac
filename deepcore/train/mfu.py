"""How well a step uses the hardware: model FLOPs per step, peaks, MFU and device memory in use.

* :func:`step_flops`: FLOPs of one call of a jitted step, from XLA's cost analysis of the compiled program
  (a custom-call kernel, e.g. cuDNN's fused attention, counts 0 there: compare programs without one);
* :func:`matmul_peak`: the measured GFLOP/s of a square jit matmul in a dtype (the practical peak);
* :func:`stated_peak`: the vendor's dense peak GFLOP/s for known accelerators (None elsewhere);
* :func:`device_memory`: bytes in use and peak bytes in use on the first device, where the backend says;
* :func:`with_flops`: a step function carrying ``flops_per_step`` and ``peak_flops``, which
  :func:`deepcore.train.fit` turns into ``tflops_per_s`` and ``mfu`` in its train log records.

MFU = model FLOPs per step / step time / peak.
"""
import statistics
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp

# dense (no sparsity) tensor-core peaks, GFLOP/s, SXM parts; float32 is TF32 (JAX's default matmul precision there)
STATED_PEAKS = {"H200": {"bfloat16": 989_400, "float16": 989_400, "float32": 494_700},
                "H100": {"bfloat16": 989_400, "float16": 989_400, "float32": 494_700},
                "A100": {"bfloat16": 312_000, "float16": 312_000, "float32": 156_000}}


def step_flops(jitted: Callable, *args) -> float:
    """FLOPs of ``jitted(*args)`` by XLA's cost analysis of the compiled program (0.0 where none is given)."""
    lower = getattr(jitted, "lower", None)
    if lower is None:
        raise TypeError(f"step_flops: expected a jitted function with .lower, got {jitted!r}")
    cost = lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float((cost or {}).get("flops", 0.0))


def matmul_peak(dtype="bfloat16", n: Optional[int] = None, reps: int = 10) -> float:
    """Median GFLOP/s of an ``n x n`` jit matmul in ``dtype`` (``n``: 2048 on a CPU, 8192 elsewhere)."""
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    f = jax.jit(lambda a, b: a @ b)
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.dtype(dtype))
    jax.block_until_ready(f(a, a))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(a, a))
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def stated_peak(dtype="bfloat16", device=None) -> Optional[float]:
    """The vendor's dense GFLOP/s for ``device`` (default: this process's first) in ``dtype``, if listed in
    STATED_PEAKS."""
    kind = str((device or jax.local_devices()[0]).device_kind)
    for name, peaks in STATED_PEAKS.items():
        if name in kind:
            return peaks.get(jnp.dtype(dtype).name)
    return None


def device_memory(device=None) -> Optional[dict]:
    """``{"in_use_mib", "peak_mib"}`` of ``device`` (default: this process's first), None where the backend keeps no
    statistics (the CPU)."""
    stats = (device or jax.local_devices()[0]).memory_stats()
    if not stats or "bytes_in_use" not in stats:
        return None
    return {"in_use_mib": round(stats["bytes_in_use"] / 2**20, 1),
            "peak_mib": round(stats.get("peak_bytes_in_use", stats["bytes_in_use"]) / 2**20, 1)}


def with_flops(step_fn: Callable, *example_args, peak_gflops: Optional[float] = None,
               dtype="bfloat16") -> Callable:
    """``step_fn`` with ``flops_per_step`` (:func:`step_flops` on ``example_args``) and ``peak_flops``
    (``peak_gflops``, else the stated peak of ``dtype``, else the measured matmul peak) attached."""
    flops = step_flops(step_fn, *example_args)
    peak = peak_gflops or stated_peak(dtype) or matmul_peak(dtype)

    def step(*args):
        return step_fn(*args)

    step.flops_per_step, step.peak_flops = flops, 1e9 * peak
    step.lower = getattr(step_fn, "lower", None)
    return step


def utilisation(step_fn: Callable, steps_per_s: float) -> dict:
    """The hardware fields of a train log record: ``tflops_per_s`` and ``mfu`` where ``step_fn`` carries
    ``flops_per_step`` (and ``peak_flops``; see :func:`with_flops`), ``device_mib``/``device_peak_mib`` where the
    backend keeps memory statistics. Empty on a plain step on a CPU."""
    rec = {}
    flops = getattr(step_fn, "flops_per_step", None)
    if flops and steps_per_s == steps_per_s:
        rec["tflops_per_s"] = steps_per_s * flops / 1e12
        if getattr(step_fn, "peak_flops", None):
            rec["mfu"] = steps_per_s * flops / step_fn.peak_flops
    mem = device_memory()
    if mem:
        rec.update(device_mib=mem["in_use_mib"], device_peak_mib=mem["peak_mib"])
    return rec


def mfu(flops_per_step: float, step_seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over ``peak_flops`` (FLOP/s)."""
    return flops_per_step / step_seconds / peak_flops


__all__ = ["step_flops", "matmul_peak", "stated_peak", "device_memory", "with_flops", "utilisation", "mfu", "STATED_PEAKS"]
