"""Time one implementation of one workload in this process and print one JSON line.

    python bench/harness.py --impl pure_jax --workload W1 [--steps 20] [--warmup 3] [--dtype float32]
    python bench/harness.py --peak            # fp32 and bf16 jit matmul peaks (2048 on CPU, 8192 on GPU), median of 20

Reported: ``first_step_s`` (the first call: trace + compile + one step, synced), ``step_s`` (the median of
``--steps`` synced steps after ``--warmup`` more), the process CPU time per step (``cpu_per_step_s``), and
how busy the rest of the machine was meanwhile: ``others_cores`` is the CPU time of all other processes
(from /proc/stat) over the timed steps, in cores; ``loadavg`` the 1-minute load average before and after.
"""
import argparse
import importlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMPLS = ("pure_jax", "deepcore", "deepcore_unrolled", "flax_linen", "flax_nnx", "equinox", "torch")
MODULES = {"pure_jax": "pure_jax", "deepcore": "deepcore_impl", "deepcore_unrolled": "deepcore_unrolled",
           "flax_linen": "flax_linen", "flax_nnx": "flax_nnx", "equinox": "equinox_impl", "torch": "torch_impl"}


def busy_seconds():
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat; None where it does not exist."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except OSError:
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def measure(impl, workload, steps, warmup, dtype, size="full"):
    from bench.workloads import CONFIGS, TINY
    module = importlib.import_module(f"bench.workloads.{MODULES[impl]}")
    cfg = (TINY if size == "tiny" else CONFIGS)[workload]
    load_before = loadavg()
    t = time.perf_counter()
    step, state, batch = module.build(workload, cfg, dtype)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    state, loss = step(state, batch)
    first_loss = module.sync(loss)
    first_step_s = time.perf_counter() - t
    for _ in range(warmup):
        state, loss = step(state, batch)
        module.sync(loss)
    times = []
    busy0, cpu0, wall0 = busy_seconds(), own_cpu_seconds(), time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        state, loss = step(state, batch)
        last_loss = module.sync(loss)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - wall0
    own = own_cpu_seconds() - cpu0
    # /proc/stat counts in clock ticks (10 ms): too coarse for runs much shorter than a second
    others = None if busy0 is None or wall < 0.5 else max(0.0, (busy_seconds() - busy0 - own) / wall)
    return {"impl": impl, "workload": workload, "dtype": dtype, "steps": steps, "step_s": statistics.median(times),
            "step_min_s": min(times), "first_step_s": first_step_s, "build_s": build_s,
            "cpu_per_step_s": own / steps, "others_cores": others, "loadavg": [load_before, loadavg()],
            "first_loss": first_loss, "last_loss": last_loss, "device": device(impl)}


def device(impl):
    if impl == "torch":
        import torch
        return "cuda:" + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    import jax
    return str(jax.devices()[0].device_kind)


def peak(n=None, reps=20):
    """Median GFLOP/s of ``n x n`` matmuls under ``jax.jit``, float32 and bfloat16: the machine's practical peak.

    ``n`` defaults to 2048 on a CPU and 8192 on an accelerator (a 2048 matmul cannot fill a GPU). float32 runs
    at JAX's default precision, as the workloads do (on recent NVIDIA GPUs that is TF32 on the tensor cores)."""
    import jax
    from deepcore.train.mfu import matmul_peak
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    out = {"peak_gflops": matmul_peak("float32", n, reps), "peak_bf16_gflops": matmul_peak("bfloat16", n, reps)}
    return dict(out, n=n, backend=jax.default_backend(), device=str(jax.devices()[0].device_kind), loadavg=loadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impl", choices=IMPLS)
    ap.add_argument("--workload")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--size", default="full", choices=("full", "tiny"))
    ap.add_argument("--peak", action="store_true", help="measure the fp32 matmul peak instead")
    args = ap.parse_args()
    if args.peak:
        print(json.dumps(peak()))
    elif args.impl is None or args.workload is None:
        ap.error("give --impl and --workload (or --peak)")
    else:
        print(json.dumps(measure(args.impl, args.workload, args.steps, args.warmup, args.dtype, args.size)))


if __name__ == "__main__":
    main()
