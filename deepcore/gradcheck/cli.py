"""``python -m deepcore.gradcheck``: gradient-check every case in :mod:`deepcore.catalog`.

Prints one row per (case, train/eval, mode): the worst relative error over leaves, where it occurs, the
tolerance and the verdict; ``--json`` prints the same rows as JSON. Exit status 1 when anything fails. With more
than one job, workers take models first, then functions, then layers, and rows print as cases finish;
``--json`` lists them in catalog order.

    python -m deepcore.gradcheck                       # fast + fwd-rev, seed 0, every case
    python -m deepcore.gradcheck --modes all --seeds 5 --filter 'conv|lstm'
    python -m deepcore.gradcheck --jobs 1                # in this process only
    python -m deepcore.gradcheck --cache ~/.cache/deepcore-gradcheck   # compile once, reuse in later runs
"""
import argparse
import json
import multiprocessing
import os
import re
import time

import jax

from deepcore import catalog
from deepcore.gradcheck import compiling
from deepcore.gradcheck.cases import check_case
from deepcore.gradcheck.checker import MODES
from deepcore.gradcheck.report import FAIL


def _cases(pattern):
    groups = [("layer", catalog.LAYER_CASES), ("model", catalog.MODEL_CASES),
              ("function", getattr(catalog, "FUNCTION_CASES", []))]
    for kind, cases in groups:
        for case in cases:
            if pattern is None or re.search(pattern, case.name):
                yield kind, case


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepcore.gradcheck", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--filter", default=None, metavar="PATTERN", help="regex on case names")
    ap.add_argument("--modes", default="fast,fwd-rev", help=f"comma-separated from {','.join(MODES)}, or 'all'")
    ap.add_argument("--seeds", type=int, default=1, help="check each case at this many seeds (0, 1, ...)")
    ap.add_argument("--both", action="store_true",
                    help="train and eval mode for every layer (default: train mode only where the case is "
                         "stochastic or stateful, since other layers ignore the flag)")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count() or 1,
                    help="check cases in this many worker processes (default: one per CPU core; compiling "
                         "the checks is single-threaded)")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="keep compiled programs in JAX's persistent compilation cache in DIR (every program, "
                         "however small), so re-running the check loads them instead of compiling")
    args = ap.parse_args(argv)
    if args.cache:
        compiling.persistent_cache(args.cache)
    modes = MODES if args.modes == "all" else tuple(m.strip() for m in args.modes.split(","))
    tasks = [(kind, case, seed) for kind, case in _cases(args.filter) for seed in range(args.seeds)]
    order = {(kind, case.name, seed): i for i, (kind, case, seed) in enumerate(tasks)}   # catalog order
    jobs = max(1, min(args.jobs, len(tasks)))
    rows, failed, start = [], 0, time.time()
    if jobs == 1:
        results = (_check(kind, case, seed, modes, args.both) for kind, case, seed in tasks)
    else:  # fresh interpreters ('spawn'): JAX's threads do not survive fork
        tasks.sort(key=lambda t: HEAVY_FIRST[t[0]])   # heaviest kinds first: no long case left for last
        pool = _pool(jobs, args.cache)
        results = pool.imap(_check_by_name, [(kind, case.name, seed, modes, args.both) for kind, case, seed in tasks],
                            chunksize=args.seeds)   # one worker checks every seed of a case: compiled once
    hits = {"hits": 0, "misses": 0}
    for summary in results:
        for key in hits:
            hits[key] += summary[0].pop("cache_" + key)
        for row in summary:
            failed += row["verdict"] in (FAIL, "error")
            rows.append(row)
            if not args.json:
                print(_line(row), flush=True)
    if jobs > 1:
        pool.close()
        pool.join()
    elapsed = time.time() - start
    cache = f", compilation cache {args.cache}: {hits['hits']} hits, {hits['misses']} misses" if args.cache else ""
    rows.sort(key=lambda r: order[r["kind"], r["name"], r["seed"]])   # stable: a case's rows keep their order
    if args.json:
        extra = dict(cache_hits=hits["hits"], cache_misses=hits["misses"]) if args.cache else {}
        print(json.dumps(dict(ok=not failed, failures=failed, seconds=round(elapsed, 1), **extra, rows=rows),
                         indent=1))
    else:
        print(f"\n{len(rows)} rows, {failed} failed, {elapsed:.1f}s{cache}")
    return 1 if failed else 0


def _check(kind, case, seed, modes, both) -> list:
    """The summary rows of one case at one seed; a case that cannot even be checked is an error row."""
    t0, before = time.time(), dict(compiling.CACHE)
    kw = {}
    if kind != "function" and not (both or case.stochastic or case.stateful):
        kw["train"] = (False,)
    try:
        summary = check_case(case, seed=seed, modes=modes, **kw).summary()
    except Exception as e:
        summary = [dict(name=case.name, mode="-", max_rel_err=float("nan"), tol=float("nan"), where="",
                        verdict="error", kinks=0, note=f"{type(e).__name__}: {e}"[:200])]
    for row in summary:
        row.update(kind=kind, seed=seed, seconds=round(time.time() - t0, 2))
    for key in ("hits", "misses"):   # this case's persistent-cache counts, taken off by main()
        summary[0]["cache_" + key] = compiling.CACHE[key] - before.get(key, 0)
    return summary


HEAVY_FIRST = {"model": 0, "function": 1, "layer": 2}   # the order kinds are handed to workers (larger first)


def _pool(jobs: int, cache):
    """``jobs`` worker processes. On a CPU they compile every program with :data:`compiling.FAST_COMPILE` (set
    in ``XLA_FLAGS`` as they start, so it covers the cases' own set-up: initialisers, eager random draws): a
    worker only checks catalog cases, all small, whose compiles are most of their time."""
    fast = compiling.ENABLED and jax.default_backend() == "cpu"
    before = os.environ.get("XLA_FLAGS")
    if fast:
        os.environ["XLA_FLAGS"] = " ".join([before or ""] + [f"--{k}={str(v).lower()}"
                                                             for k, v in compiling.FAST_COMPILE.items()]).strip()
    try:
        return multiprocessing.get_context("spawn").Pool(jobs, initializer=_worker, initargs=(cache,))
    finally:   # the workers have started with it; this process keeps its own
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


def _worker(cache):
    """A worker process's start: the same persistent cache as the parent's."""
    if cache:
        compiling.persistent_cache(cache)


def _check_by_name(task) -> list:
    """:func:`_check` in a worker process, which finds the case in its own import of the catalog."""
    kind, name, seed, modes, both = task
    case = next(c for k, c in _cases(None) if k == kind and c.name == name)
    return _check(kind, case, seed, modes, both)


def _line(row) -> str:
    cells = (row["name"], f"seed {row['seed']}", row["mode"], f"{row['max_rel_err']:.2e}", f"tol {row['tol']:.0e}",
             row["verdict"].upper() if row["verdict"] in (FAIL, "error") else row["verdict"],
             row["where"] + (f" ({row['kinks']} kinks moved)" if row.get("kinks") else "") + (
                 f" {row['note']}" if row.get("note") else ""))
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, (28, 7, 18, 9, 10, 6, 0))).rstrip()

