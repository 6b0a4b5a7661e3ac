"""Run the benchmark workloads in every implementation, fairly, and write bench/RESULTS.md.

    python bench/run.py                                   # the full plan (see below)
    python bench/run.py --workloads W1,W2 --impls pure_jax,deepcore --dtype float32 --rounds 3 --steps 20

Each (implementation, workload, dtype) runs in a fresh process (``bench/harness.py``); the jobs are
interleaved round-robin, the order rotated each round, so drift on the machine hits all of them alike.
Per job: the median over rounds of each round's median step time, its ratio to the hand-written JAX step
(``pure_jax``), achieved GFLOP/s (the workload table's GFLOP/step over the step time) and that as a fraction
of the fp32 matmul peak (2048x2048 jit matmul, median of 20, measured before and after), and the first-step
(trace + compile) latency. A round is flagged when other processes used more than 0.25 cores during its
timed steps, or the load average less this process's own CPU use exceeded 1.5.

Full plan (no --workloads/--impls/--dtype given): float32 W1-W5 in all six implementations, the larger
transformer W4L (d 512, 8 layers, context 256, batch 8) in pure_jax and deepcore, and bfloat16 W1-W5
(plus W4L on a GPU) in pure_jax and deepcore. Implementations whose package is missing are skipped with a note.
RESULTS.md is rewritten after every job (a cut-short run keeps what it measured); each job's raw JSON is
appended to RESULTS.jsonl next to it.
"""
import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.harness import IMPLS  # noqa: E402
from bench.workloads import CONFIGS, GFLOP, WORKLOADS  # noqa: E402

NEEDS = {"flax_nnx": "flax", "flax_linen": "flax", "equinox": "equinox", "torch": "torch"}
FLAG_OTHERS_CORES, FLAG_LOAD = 0.25, 1.5


def full_plan(backend):
    jobs = [(i, w, "float32") for w in WORKLOADS for i in IMPLS]
    jobs += [(i, "W4L", "float32") for i in ("pure_jax", "deepcore")]  # ~1 min a job: the 45-minute budget
    bf16 = WORKLOADS + (("W4L",) if backend != "cpu" else ())  # the larger model's bf16 MFU is a GPU figure
    jobs += [(i, w, "bfloat16") for w in bf16 for i in ("pure_jax", "deepcore")]
    return jobs


def run_job(cmd, timeout):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit status %d" % p.returncode])[-1]}, time.perf_counter() - t
    return json.loads(p.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def flagged(r):
    others = r.get("others_cores")
    own = r["cpu_per_step_s"] / r["step_s"] if r.get("step_s") else 0.0
    load = max(x for x in r["loadavg"] if x is not None) - own if all(r.get("loadavg") or [None]) else 0.0
    return (others is not None and others > FLAG_OTHERS_CORES) or load > FLAG_LOAD


def machine():
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for name in ("jax", "jaxlib", "flax", "optax", "equinox", "torch"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; " + ", ".join(versions)


def summarise(results, peak):
    """{(impl, workload, dtype): summary} over the rounds that returned a figure."""
    out = {}
    for key, rounds in results.items():
        ok = [r for r in rounds if "step_s" in r]
        if not ok:
            out[key] = {"error": rounds[-1].get("error", "no result")}
            continue
        step = statistics.median(r["step_s"] for r in ok)
        gflops = GFLOP[key[1]] / step if peak else float("nan")  # no peak: a smoke run at tiny sizes
        out[key] = {"step_ms": 1e3 * step, "rounds_ms": [1e3 * r["step_s"] for r in ok],
                    "first_s": statistics.median(r["first_step_s"] for r in ok), "gflops": gflops,
                    "peak_frac": gflops / peak if peak else None, "flagged": sum(map(flagged, ok)), "n": len(ok),
                    "others": max((r["others_cores"] for r in ok if r["others_cores"] is not None), default=None), "device": ok[0]["device"],
                    "loss": (ok[0]["first_loss"], ok[0]["last_loss"])}
    return out


def write_results(path, summary, peaks, args, wall_s, note):
    peak = statistics.median(p["peak_gflops"] for p in peaks) if peaks else None
    lines = ["# Benchmark results", ""]
    if note:
        lines += [f"**{note}**", ""]
    shown = [a for i, a in enumerate(args) if a != "--note" and (i == 0 or args[i - 1] != "--note")]
    lines += [f"Command: `python bench/run.py {' '.join(shown)}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"total wall time {wall_s / 60:.1f} min  ", f"Machine: {machine()}  ",
              f"Backend: {peaks[0]['backend'] if peaks else '?'} ({peaks[0]['device'] if peaks else '?'})  ",
              "fp32 matmul peak (2048x2048 jit matmul, median of 20): "
              + (", ".join(f"{p['peak_gflops']:.0f}" for p in peaks) + f" GFLOP/s (used: {peak:.0f})" if peaks else "not measured"),
              "", "Step time: median over rounds of each round's median synced step; ratio: to the hand-written JAX "
              "step (pure_jax); GFLOP/s from the workload table's GFLOP/step; first step: trace + compile + one step. "
              f"Flagged rounds: other processes used > {FLAG_OTHERS_CORES} cores, or load average less our own use > "
              f"{FLAG_LOAD}; 'others' is the most other processes used in any round, in cores.", ""]
    groups = sorted({(w, d) for (_, w, d) in summary}, key=lambda k: (k[1] != "float32", k[0]))
    for w, d in groups:
        lines += [f"## {w} ({d}, {GFLOP[w]} GFLOP/step, {CONFIGS[w]})", "",
                  "| implementation | step ms | rounds ms | ratio to pure_jax | GFLOP/s | of peak | first step s | flagged | others | device |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        base = summary.get(("pure_jax", w, d), {}).get("step_ms")
        for impl in IMPLS:
            s = summary.get((impl, w, d))
            if s is None:
                continue
            if "error" in s:
                lines.append(f"| {impl} | failed: {s['error'][:120]} |  |  |  |  |  |  |  |  |")
                continue
            ratio = f"{s['step_ms'] / base:.2f}" if base else "-"
            others = "n/a" if s["others"] is None else f"{s['others']:.2f}"
            frac = f"{100 * s['peak_frac']:.0f}%" if s["peak_frac"] else "-"
            lines.append(f"| {impl} | {s['step_ms']:.1f} | {' '.join(f'{x:.1f}' for x in s['rounds_ms'])} | {ratio} | "
                         f"{s['gflops']:.0f} | {frac} | {s['first_s']:.1f} | {s['flagged']}/{s['n']} | {others} | {s['device']} |")
        lines.append("")
    Path(path).write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", help=f"comma-separated, from {sorted(CONFIGS)}")
    ap.add_argument("--impls", help=f"comma-separated, from {','.join(IMPLS)}")
    ap.add_argument("--dtype", help="float32, bfloat16 or both comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="timed synced steps per job per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per job")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--size", default="full", choices=("full", "tiny"), help="tiny: test-sized models (a smoke run)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the job records already in the .jsonl next to --out and run only the missing rounds")
    ap.add_argument("--note", default="", help="a line printed at the top of RESULTS.md")
    args = ap.parse_args()
    harness = [sys.executable, str(HERE / "harness.py")]
    t0 = time.perf_counter()
    peaks = [run_job(harness + ["--peak"], args.timeout)[0]]
    backend = peaks[0].get("backend", "cpu")
    if args.workloads or args.impls or args.dtype:
        ws = (args.workloads or ",".join(WORKLOADS)).split(",")
        impls = (args.impls or ",".join(IMPLS)).split(",")
        jobs = [(i, w, d) for d in (args.dtype or "float32").split(",") for w in ws for i in impls]
    else:
        jobs = full_plan(backend)
    bad = [j for j in jobs if j[0] not in IMPLS or j[1] not in CONFIGS or j[2] not in ("float32", "bfloat16")]
    if bad:
        ap.error(f"unknown implementation, workload or dtype in {bad}")
    missing = sorted({i for i, _, _ in jobs if i in NEEDS and importlib.util.find_spec(NEEDS[i]) is None})
    for i in missing:
        print(f"skipping {i}: package {NEEDS[i]!r} is not installed (pip install -e '.[bench]')", flush=True)
    jobs = [j for j in jobs if j[0] not in missing]
    results = {j: [] for j in jobs}
    raw = Path(args.out).with_suffix(".jsonl")
    if args.resume and raw.exists():
        for line in raw.read_text().splitlines():
            rec = json.loads(line)
            key = (rec["impl"], rec["workload"], rec["dtype"])
            results.setdefault(key, [])  # jobs outside this invocation's plan stay in RESULTS.md
            if len(results[key]) < args.rounds:
                results[key].append(rec)
    else:
        raw.write_text("")

    def write():
        ok = [p for p in peaks if "peak_gflops" in p]
        peak = statistics.median(p["peak_gflops"] for p in ok) if ok else None
        done = {k: v for k, v in results.items() if v}
        write_results(args.out, summarise(done, peak if args.size == "full" else None), ok, sys.argv[1:], time.perf_counter() - t0, args.note)

    for r in range(args.rounds):
        k = (r * len(jobs)) // args.rounds  # rotate the order: each job starts a round at a different place
        for impl, w, d in jobs[k:] + jobs[:k]:
            if len(results[(impl, w, d)]) > r:  # measured before (--resume)
                continue
            res, took = run_job(harness + ["--impl", impl, "--workload", w, "--dtype", d, "--steps", str(args.steps),
                                           "--warmup", str(args.warmup), "--size", args.size], args.timeout)
            results[(impl, w, d)].append(res)
            with raw.open("a") as f:
                f.write(json.dumps(dict(res, round=r + 1, impl=impl, workload=w, dtype=d)) + "\n")
            write()
            others = "n/a" if res.get("others_cores") is None else f"{res['others_cores']:.2f}"
            fig = (f"{1e3 * res['step_s']:.1f} ms/step, first step {res['first_step_s']:.1f} s, others "
                   f"{others} cores" + (" FLAGGED" if flagged(res) else "")) if "step_s" in res \
                else f"FAILED: {res['error']}"
            print(f"round {r + 1}/{args.rounds} {impl:10s} {w:4s} {d:8s} {fig} ({took:.0f} s)", flush=True)
    peaks.append(run_job(harness + ["--peak"], args.timeout)[0])
    write()
    print(f"wrote {args.out} ({(time.perf_counter() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
