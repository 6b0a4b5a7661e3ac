"""Run the benchmark workloads in every implementation, fairly, and write bench/RESULTS.md.

    python bench/run.py                                   # the full plan (see below)
    python bench/run.py --workloads W1,W2 --impls pure_jax,deepcore --dtype float32 --rounds 3 --steps 20

Each (implementation, workload, dtype) runs in a fresh process (``bench/harness.py``); the jobs are
interleaved round-robin, the order rotated each round, so drift on the machine hits all of them alike.
Per job: the median over rounds of each round's median step time, its ratio to the hand-written JAX step
(``pure_jax``), achieved GFLOP/s (the workload table's GFLOP/step over the step time) and that as a fraction
of the matmul peak of its dtype (fp32 or bf16 jit matmul, 2048 square on a CPU and 8192 on a GPU, median of 20,
measured before and after), and the first-step
(trace + compile) latency. A round is flagged when other processes used more than 0.25 cores during its
timed steps (where those were too short to measure that: when the load average less this process's own CPU use
exceeded 1.5).

Full plan (no --workloads/--impls/--dtype given): float32 W1-W5 in all six implementations, the larger
transformer W4L (d 512, 8 layers, context 256, batch 8) in pure_jax and deepcore, W4 and W4L also in
deepcore_unrolled (the blocks unrolled rather than scanned), and bfloat16 W1-W5
in pure_jax and deepcore. On a GPU the plan is cut to what an accelerator adds: W1-W5 float32 in pure_jax,
deepcore and PyTorch, and the transformers W4L and W4XL (d 1024, 8 layers, context 512, batch 32: W4L is too
small to fill a GPU) in float32 and bfloat16 in the same three, whose bf16 rows give the model FLOPs utilisation.
Implementations whose package is missing are skipped with a note. ``--deadline`` stops starting jobs after that
many minutes (rounds run round-robin, so every job has the same number of rounds, give or take one).
RESULTS.md is rewritten after every job (a cut-short run keeps what it measured); each job's raw JSON, the peak
measurements and a record of the run are appended to RESULTS.jsonl next to it. ``--resume`` runs only the rounds
missing from it; ``--render`` rewrites RESULTS.md from it without measuring anything.
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
from deepcore.train.metrics_log import read_metrics  # noqa: E402

MAIN = tuple(i for i in IMPLS if i != "deepcore_unrolled")  # deepcore_unrolled differs on the transformers alone
NEEDS = {"flax_nnx": "flax", "flax_linen": "flax", "equinox": "equinox", "torch": "torch"}
FLAG_OTHERS_CORES, FLAG_LOAD = 0.25, 1.5


def full_plan(backend):
    if backend != "cpu":  # process start-up dominates on a GPU: measure what it adds over the CPU tables
        three = ("pure_jax", "deepcore", "torch")
        return ([(i, w, "float32") for w in WORKLOADS for i in three]
                + [(i, w, d) for d in ("float32", "bfloat16") for w in ("W4L", "W4XL") for i in three])
    jobs = [(i, w, "float32") for w in WORKLOADS for i in MAIN]
    jobs += [("deepcore_unrolled", "W4", "float32")]  # the transformer's blocks unrolled instead of scanned
    jobs += [(i, "W4L", "float32") for i in ("pure_jax", "deepcore", "deepcore_unrolled")]  # ~1 min a job
    jobs += [(i, w, "bfloat16") for w in WORKLOADS for i in ("pure_jax", "deepcore")]
    return jobs


def run_job(cmd, timeout):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit status %d" % p.returncode])[-1]}, time.perf_counter() - t
    return json.loads(p.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def flagged(r):
    """Did something else load the machine during this job's timed steps? Judged by the other processes' CPU
    time where it was measured; only where the timed steps were too short for that (W1 on a CPU), by the load
    average, which lags by minutes (a job that follows a busy spell can be flagged wrongly)."""
    others = r.get("others_cores")
    if others is not None:
        return others > FLAG_OTHERS_CORES
    own = r["cpu_per_step_s"] / r["step_s"] if r.get("step_s") else 0.0
    load = max(x for x in r["loadavg"] if x is not None) - own if all(r.get("loadavg") or [None]) else 0.0
    return load > FLAG_LOAD


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


def summarise(results, peaks):
    """{(impl, workload, dtype): summary} over the rounds that returned a figure; ``peaks``: {dtype: GFLOP/s}."""
    out = {}
    for key, rounds in results.items():
        ok = [r for r in rounds if "step_s" in r]
        if not ok:
            out[key] = {"error": rounds[-1].get("error", "no result")}
            continue
        step = statistics.median(r["step_s"] for r in ok)
        peak = (peaks or {}).get(key[2])
        gflops = GFLOP[key[1]] / step if peaks else float("nan")  # no peaks: a smoke run at tiny sizes
        out[key] = {"step_ms": 1e3 * step, "rounds_ms": [1e3 * r["step_s"] for r in ok],
                    "first_s": statistics.median(r["first_step_s"] for r in ok), "gflops": gflops,
                    "peak_frac": gflops / peak if peak else None, "flagged": sum(map(flagged, ok)), "n": len(ok),
                    "others": max((r["others_cores"] for r in ok if r["others_cores"] is not None), default=None), "device": ok[0]["device"],
                    "loss": (ok[0]["first_loss"], ok[0]["last_loss"])}
    return out


def peak_medians(peaks):
    """{dtype: median GFLOP/s} over the peak measurements that returned one."""
    out = {}
    for dtype, key in (("float32", "peak_gflops"), ("bfloat16", "peak_bf16_gflops")):
        got = [p[key] for p in peaks if key in p]
        if got:
            out[dtype] = statistics.median(got)
    return out


def write_results(path, summary, peaks, args, wall_s, note, date=None, host=None):
    used = peak_medians(peaks)
    lines = ["# Benchmark results", ""]
    if note:
        lines += [f"**{note}**", ""]
    shown = [a for i, a in enumerate(args) if a != "--note" and (i == 0 or args[i - 1] != "--note")]
    lines += [f"Command: `{' '.join(['python bench/run.py'] + shown)}`  ", f"Date: {date or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"total wall time {wall_s / 60:.1f} min  ", f"Machine: {host or machine()}  ",
              f"Backend: {peaks[0]['backend'] if peaks else '?'} ({peaks[0]['device'] if peaks else '?'})  ",
              (f"Matmul peaks ({peaks[0].get('n', 2048)} square jit matmul, median of 20, before and after): fp32 "
               + ", ".join(f"{p['peak_gflops']:.0f}" for p in peaks) + f" GFLOP/s (used: {used['float32']:.0f}); bf16 "
               + ", ".join(f"{p['peak_bf16_gflops']:.0f}" for p in peaks if 'peak_bf16_gflops' in p)
               + (f" GFLOP/s (used: {used['bfloat16']:.0f})" if "bfloat16" in used else "not measured")
               if peaks else "Matmul peaks: not measured"),
              "", "Step time: median over rounds of each round's median synced step; ratio: to the hand-written JAX "
              "step (pure_jax); GFLOP/s from the workload table's GFLOP/step; 'of peak': of the matmul peak of the row's dtype "
              "(for bf16 rows on a GPU this is the model FLOPs utilisation); first step: trace + compile + one step. "
              f"Flagged rounds: other processes used > {FLAG_OTHERS_CORES} cores during the timed steps (where the steps "
              f"were too short to measure that, 'others' n/a: the 1-minute load average less our own use > {FLAG_LOAD}); "
              "'others' is the most other processes used in any round, in cores.", ""]
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


def log_peak(raw, p):
    with raw.open("a") as f:
        f.write(json.dumps(dict(p, kind="peak")) + "\n")


def read_records(raw, rounds):
    """The records in the .jsonl ``raw``: ``({(impl, workload, dtype): [job record per round, at most rounds]},
    [peak records], [run records])``."""
    results, peaks, runs = {}, [], []
    for rec in read_metrics(str(raw)):
        kind = rec.get("kind")
        if kind == "peak":
            peaks.append(rec)
        elif kind == "run":
            runs.append(rec)
        else:
            got = results.setdefault((rec["impl"], rec["workload"], rec["dtype"]), [])
            if len(got) < rounds:
                got.append(rec)
    return results, peaks, runs


def render(raw, out, rounds):
    """Rewrite ``out`` from the job, peak and run records in ``raw`` (after a change to the report's rules)."""
    results, peaks, runs = read_records(raw, rounds)
    ok = [p for p in peaks if "peak_gflops" in p]
    argv = runs[-1]["argv"] if runs else ["(recorded without its command)"]
    write_results(out, summarise(results, peak_medians(ok) or None), ok, argv, sum(r["wall_s"] for r in runs),
                  runs[-1].get("note", "") if runs else "", runs[-1].get("date") if runs else None,
                  runs[-1].get("machine") if runs else None)
    print(f"wrote {out} from {raw}")


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
    ap.add_argument("--deadline", type=float, default=None, help="minutes after which no further job is started")
    ap.add_argument("--render", action="store_true",
                    help="measure nothing: rewrite --out from the records in the .jsonl next to it")
    args = ap.parse_args()
    raw = Path(args.out).with_suffix(".jsonl")
    if args.render:
        return render(raw, args.out, args.rounds)
    harness = [sys.executable, str(HERE / "harness.py")]
    t0 = time.perf_counter()
    peaks = [run_job(harness + ["--peak"], args.timeout)[0]]
    backend = peaks[0].get("backend", "cpu")
    if args.workloads or args.impls or args.dtype:
        ws = (args.workloads or ",".join(WORKLOADS)).split(",")
        impls = (args.impls or ",".join(MAIN)).split(",")
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
    raw.parent.mkdir(parents=True, exist_ok=True)
    earlier_peaks = []
    if args.resume and raw.exists():
        done, earlier_peaks, _ = read_records(raw, args.rounds)
        for key, recs in done.items():  # jobs outside this invocation's plan stay in RESULTS.md
            results.setdefault(key, []).extend(recs)
    else:
        raw.write_text("")
    log_peak(raw, peaks[0])

    def write():
        ok = [p for p in earlier_peaks + peaks if "peak_gflops" in p]
        done = {k: v for k, v in results.items() if v}
        write_results(args.out, summarise(done, peak_medians(ok) if args.size == "full" else None), ok, sys.argv[1:],
                      time.perf_counter() - t0, args.note)

    late = False
    for r in range(args.rounds):
        if late:
            break
        k = (r * len(jobs)) // args.rounds  # rotate the order: each job starts a round at a different place
        for impl, w, d in jobs[k:] + jobs[:k]:
            if len(results[(impl, w, d)]) > r:  # measured before (--resume)
                continue
            if args.deadline is not None and time.perf_counter() - t0 > 60 * args.deadline:
                print(f"deadline of {args.deadline} min reached in round {r + 1}: no further jobs", flush=True)
                late = True
                break
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
    log_peak(raw, peaks[-1])
    write()
    with raw.open("a") as f:
        f.write(json.dumps({"kind": "run", "argv": sys.argv[1:], "wall_s": time.perf_counter() - t0, "note": args.note,
                            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}) + "\n")
    print(f"wrote {args.out} ({(time.perf_counter() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
