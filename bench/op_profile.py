"""Where a workload's training step spends its time: a per-operation profile of one implementation.

    python bench/op_profile.py --impl deepcore --workload W2            # JAX: XLA's executed ops (thunks)
    python bench/op_profile.py --impl torch --workload W2               # PyTorch: torch.profiler's aten ops

Runs ``--warmup`` steps, then profiles ``--steps`` more and prints the wall time per step, the operations'
time per step grouped into kinds (library fusion: XLA:CPU's YNNPACK kernels, which hold the dots and most
convolutions; convolution, matmul, elementwise/fused, layout: transpose/copy, reduction, other) and the
``--top`` most expensive operations. JAX: ``jax.profiler.trace`` with a Perfetto trace, each executed HLO op (thunk) as one event; PyTorch: the self CPU time of each op. Op times are summed over the
threads that ran them, so they can exceed the wall time where ops overlap.
"""
import argparse
import collections
import glob
import gzip
import importlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import IMPLS, MODULES  # noqa: E402

# runtime bookkeeping events in JAX's trace, not operations of the program
_NOT_OPS = re.compile(r"^(\$|end: |ThunkExecutor|PjitFunction|CommonPjRt|PjRt|Allocate|Handle inputs|ParseArguments|"
                      r"PythonRefManager|np\.asarray|TfrtCpu|Execute|copy_to_host|BufferFromPyval)")
KINDS = (("fused attention (cuDNN flash / PyTorch SDPA kernels)", re.compile(r"sdpa|flash|fmha|cudnn_generated|"
                                                                             r"scaled_dot_product", re.I)),
         ("library fusion (YNNPACK/XNNPACK/oneDNN: dots or convolutions with their elementwise neighbours)",
          re.compile(r"^(ynn|xnn|onednn)_?fusion", re.I)),
         ("convolution", re.compile(r"conv(?!ert)", re.I)),
         ("matmul", re.compile(r"dot|gemm|xmma|cutlass|nvjet|matmul|\bmm\b|addmm|bmm|linear", re.I)),
         ("layout", re.compile(r"transpose|copy|permute|contiguous|pad|slice|concat|reshape", re.I)),
         ("reduction", re.compile(r"reduce|sum|max_pool|avg_pool|mean|softmax", re.I)),
         ("elementwise/fused", re.compile(r"fusion|add|mul|relu|tanh|sigmoid|gelu|sub|div|exp|where|select|"
                                          r"threshold|clamp|leaky|adam|lerp|sqrt|pow|neg|fill|zero", re.I)))


def kind(name: str) -> str:
    for k, pattern in KINDS:
        if pattern.search(name):
            return k
    return "other"


def profile_jax(step, state, batch, sync, steps):
    import jax

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(steps):
                state, loss = step(state, batch)
                sync(loss)
        wall = time.perf_counter() - t
        path = glob.glob(f"{d}/**/perfetto_trace.json.gz", recursive=True)[0]
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    # on an accelerator, count the kernels on the device's timelines only (not the host's launches)
    device = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
              and re.search(r"/device:(GPU|TPU)", str(e.get("args", {}).get("name", "")))}
    ops = collections.Counter()
    for e in events:
        if device and e.get("pid") not in device:
            continue
        if e.get("ph") == "X" and not _NOT_OPS.match(e.get("name", "")):
            ops[e["name"]] += e.get("dur", 0) / 1e6
    return wall, ops


def profile_torch(step, state, batch, sync, steps):
    import torch

    t = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            state, loss = step(state, batch)
            sync(loss)
    wall = time.perf_counter() - t
    ops = collections.Counter({e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()})
    return wall, ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impl", choices=IMPLS, required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--size", default="full", choices=("full", "tiny"))
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()
    from bench.workloads import CONFIGS, TINY

    if args.workload not in CONFIGS:
        ap.error(f"--workload {args.workload!r}: choose one of {sorted(CONFIGS)}")
    module = importlib.import_module(f"bench.workloads.{MODULES[args.impl]}")
    step, state, batch = module.build(args.workload, (TINY if args.size == "tiny" else CONFIGS)[args.workload],
                                      args.dtype)
    for _ in range(1 + args.warmup):
        state, loss = step(state, batch)
        module.sync(loss)
    run = profile_torch if args.impl == "torch" else profile_jax
    wall, ops = run(step, state, batch, module.sync, args.steps)
    per_step = {name: s / args.steps for name, s in ops.items()}
    kinds = collections.Counter()
    for name, s in per_step.items():
        kinds[kind(name)] += s
    total = sum(per_step.values())
    out = {"impl": args.impl, "workload": args.workload, "dtype": args.dtype, "steps": args.steps,
           "wall_ms_per_step": 1e3 * wall / args.steps, "op_ms_per_step": 1e3 * total,
           "kinds_ms": {k: 1e3 * v for k, v in kinds.most_common()},
           "top_ms": {k: 1e3 * v for k, v in collections.Counter(per_step).most_common(args.top)}}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.impl} {args.workload} {args.dtype}: {out['wall_ms_per_step']:.1f} ms wall per step (profiled), "
          f"{out['op_ms_per_step']:.1f} ms of operations per step\n")
    print("| kind | ms/step | share of op time |\n|---|---|---|")
    for k, v in out["kinds_ms"].items():
        print(f"| {k} | {v:.1f} | {100 * v / max(out['op_ms_per_step'], 1e-9):.0f}% |")
    print("\n| operation | kind | ms/step |\n|---|---|---|")
    for k, v in out["top_ms"].items():
        print(f"| {k[:80]} | {kind(k)} | {v:.1f} |")


if __name__ == "__main__":
    main()
