"""Step time, model FLOPs utilisation and memory of implementations of one workload, side by side in one process.

    python bench/mfu.py --workload W4XL --dtype bfloat16 --impls pure_jax,deepcore,deepcore_unrolled,torch
    python bench/mfu.py --workload W4LC --dtype bfloat16 --impls deepcore,deepcore:implementation=xla,torch

An implementation ``name:opt=value`` passes options to deepcore's ``TransformerLM`` (``implementation``,
``remat``). The implementations run ``--rounds`` times in turn, ``--steps`` synced steps each after a warm-up
(and compile); the step time is the median over rounds of each round's median. Reported per implementation:

* model GFLOP per step: XLA's compiled cost analysis of the JAX step (FLOPs of the program, including the
  optimiser; a custom-call kernel such as cuDNN's attention counts 0 there, so the hand-written step's
  figure is used for every row), and the workload table's matmul count (``bench.workloads.GFLOP``);
* MFU: table GFLOP / step time / peak, against the measured jit-matmul peak of the dtype (8192 square on a
  GPU, 2048 on a CPU) and, on known GPUs, the vendor's stated dense peak;
* device memory: the compiled program's temporary bytes and, where the backend reports it, the device's
  peak bytes in use.
"""
import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import MODULES  # noqa: E402
from bench.workloads import CONFIGS, GFLOP, TINY, transformer_gflop  # noqa: E402
from deepcore.train.mfu import device_memory, matmul_peak, stated_peak  # noqa: E402


def parse(spec):
    name, _, opts = spec.partition(":")
    options = dict(kv.split("=", 1) for kv in opts.split(";") if kv)
    return name, options


def build(spec, workload, cfg, dtype):
    name, options = parse(spec)
    module = importlib.import_module(f"bench.workloads.{MODULES[name]}")
    step, state, batch = module.build(workload, cfg, dtype, **options)
    info = {}
    jitted = getattr(step, "jitted", step)
    if hasattr(jitted, "lower"):
        compiled = jitted.lower(state, batch).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        mem = compiled.memory_analysis()
        info = {"compiled_gflop": (cost or {}).get("flops", 0) / 1e9,
                "temp_mib": getattr(mem, "temp_size_in_bytes", 0) / 2**20}
    return module, step, state, batch, info


def timed(module, step, state, batch, steps):
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, loss = step(state, batch)
        module.sync(loss)
        times.append(time.perf_counter() - t)
    return state, statistics.median(times), module.sync(loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="W4XL")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--impls", default="pure_jax,deepcore")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="the tiny test sizes (a smoke run)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    cfg = (TINY if args.tiny else CONFIGS)[args.workload]
    gflop = transformer_gflop(cfg) if args.workload.startswith("W4") else GFLOP[args.workload]
    peak, stated = matmul_peak(args.dtype), stated_peak(args.dtype)
    jobs = {}
    for spec in args.impls.split(","):
        t = time.perf_counter()
        try:
            module, step, state, batch, info = build(spec, args.workload, cfg, args.dtype)
            state, _, _ = timed(module, step, state, batch, 2)   # compile (torch: warm-up) and one more
        except Exception as e:   # one failing implementation must not cost the others' figures
            print(f"{spec}: {type(e).__name__}: {str(e).splitlines()[0][:300]}", flush=True)
            continue
        jobs[spec] = dict(module=module, step=step, state=state, batch=batch, info=info, rounds=[],
                          first_s=time.perf_counter() - t)
    for _ in range(args.rounds):
        for spec, j in jobs.items():
            j["state"], s, j["loss"] = timed(j["module"], j["step"], j["state"], j["batch"], args.steps)
            j["rounds"].append(s)
    ref = next((j["info"].get("compiled_gflop") for s, j in jobs.items() if s == "pure_jax"), None)
    rows = []
    for spec, j in jobs.items():
        step_s = statistics.median(j["rounds"])
        rows.append({"impl": spec, "workload": args.workload, "dtype": args.dtype, "step_ms": 1e3 * step_s,
                     "rounds_ms": [round(1e3 * r, 2) for r in j["rounds"]], "table_gflop": gflop,
                     "compiled_gflop": j["info"].get("compiled_gflop"), "pure_jax_compiled_gflop": ref,
                     "mfu_measured_peak": gflop / step_s / peak if peak else None,
                     "mfu_stated_peak": gflop / step_s / stated if stated else None,
                     "temp_mib": j["info"].get("temp_mib"), "loss": j["loss"], "first_s": j["first_s"]})
    mem = device_memory()
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "peak_gflops": peak, "stated_gflops": stated,
                                               "device_memory": mem}, indent=1))
    base = next((r["step_ms"] for r in rows if r["impl"] == "pure_jax"), None)
    print(f"\n{args.workload} {args.dtype} {cfg}: {gflop:.1f} GFLOP/step (table); matmul peak {peak:.0f} GFLOP/s "
          f"measured, {stated or float('nan'):.0f} stated; device memory {mem}")
    print("| impl | step ms | vs pure_jax | MFU (measured peak) | MFU (stated peak) | compiled GFLOP | temp MiB "
          "| loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cg, tm, ms = r["compiled_gflop"], r["temp_mib"], r["mfu_stated_peak"]
        print(f"| {r['impl']} | {r['step_ms']:.2f} | {r['step_ms'] / base if base else float('nan'):.2f} | "
              f"{100 * r['mfu_measured_peak']:.1f}% | {'%.1f%%' % (100 * ms) if ms else 'n/a'} | "
              f"{'%.0f' % cg if cg is not None else 'n/a'} | {'%.0f' % tm if tm is not None else 'n/a'} | "
              f"{r['loss']:.4f} |")


if __name__ == "__main__":
    main()
