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
import contextlib
import json
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

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
    else:   # one worker checks every seed of a case (compiled once); heaviest kinds first: no long case left last
        cases = sorted({(kind, case.name): (kind, case) for kind, case, _ in tasks}.values(),
                       key=lambda kc: HEAVY_FIRST[kc[0]])
        results = _in_workers([(kind, case, range(args.seeds)) for kind, case in cases], jobs, args.cache, modes,
                              args.both)
    hits = {"hits": 0, "misses": 0}
    for summary in results:
        for key in hits:
            hits[key] += summary[0].pop("cache_" + key)
        for row in summary:
            failed += row["verdict"] in (FAIL, "error")
            rows.append(row)
            if not args.json:
                print(_line(row), flush=True)
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
        summary = _error(case.name, f"{type(e).__name__}: {e}")
    for row in summary:
        row.update(kind=kind, seed=seed, seconds=round(time.time() - t0, 2))
    for key in ("hits", "misses"):   # this case's persistent-cache counts, taken off by main()
        summary[0]["cache_" + key] = compiling.CACHE[key] - before.get(key, 0)
    return summary


def _error(name, note) -> list:
    return [dict(name=name, mode="-", max_rel_err=float("nan"), tol=float("nan"), where="", verdict="error",
                 kinks=0, note=note[:200])]


HEAVY_FIRST = {"model": 0, "function": 1, "layer": 2}   # the order kinds are handed to workers (larger first)


def _in_workers(groups, jobs: int, cache, modes, both):
    """The summaries of ``groups`` = [(kind, case, seeds)] from ``jobs`` worker processes, in order.

    On a CPU the workers compile every program with :data:`compiling.FAST_COMPILE` (see :func:`_run`). A worker
    that dies (a crash inside XLA) breaks its pool: stderr says so, and the unfinished cases are checked again in
    fresh workers with XLA's default options; should that pool break too, each case left gets a worker of its own,
    and one that kills it gets an error row. Nothing hangs and no case is silently lost."""
    done = 0
    for fast in ((True, False) if compiling.active() else (False,)):
        try:
            for summaries in _run(groups[done:], jobs, cache, modes, both, fast):
                yield from summaries
                done += 1
            return
        except BrokenProcessPool as e:
            print(f"gradcheck: a worker process died while checking {groups[done][1].name} or a case beside it "
                  f"({e}); checking the {len(groups) - done} unfinished cases again"
                  + (" with XLA's default compile options" if fast else ", each in a worker of its own"),
                  file=sys.stderr, flush=True)
    for kind, case, seeds in groups[done:]:
        try:
            yield from list(_run([(kind, case, seeds)], 1, cache, modes, both, False))[0]
        except BrokenProcessPool:
            for seed in seeds:
                yield [dict(row, kind=kind, seed=seed, seconds=0.0, cache_hits=0, cache_misses=0)
                       for row in _error(case.name, "its worker process died (a crash, e.g. inside XLA)")]


def _run(groups, jobs: int, cache, modes, both, fast: bool):
    """Each group's summaries from a fresh pool of ``jobs`` workers (fresh interpreters, 'spawn': JAX's threads do
    not survive fork). ``fast``: they start with :data:`compiling.FAST_COMPILE` in ``XLA_FLAGS``, so it covers the
    cases' own set-up too (initialisers, eager random draws): they only check catalog cases, all small, whose
    compiles are most of their time. Otherwise the rule is off in them."""
    flags = " ".join([os.environ.get("XLA_FLAGS", "")] + [f"--{k}={str(v).lower()}"
                                                         for k, v in compiling.FAST_COMPILE.items()]).strip()
    pool = ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"), _worker, (cache,))
    with _environ({"XLA_FLAGS": flags} if fast else {"DEEPCORE_GRADCHECK_FAST_COMPILE": "0"}):
        futures = [pool.submit(_check_seeds, kind, case.name, seeds, modes, both)   # workers start here
                   for kind, case, seeds in groups]
    try:
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _environ(values):
    """``os.environ`` with ``values`` set (this process keeps its own afterwards)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_seeds(kind, name, seeds, modes, both) -> list:
    """:func:`_check` of one case at each of ``seeds`` in a worker process (its own import of the catalog)."""
    case = next(c for k, c in _cases(None) if k == kind and c.name == name)
    return [_check(kind, case, seed, modes, both) for seed in seeds]


def _worker(cache):
    """A worker process's start: the same persistent cache as the parent's."""
    if cache:
        compiling.persistent_cache(cache)


def _line(row) -> str:
    cells = (row["name"], f"seed {row['seed']}", row["mode"], f"{row['max_rel_err']:.2e}", f"tol {row['tol']:.0e}",
             row["verdict"].upper() if row["verdict"] in (FAIL, "error") else row["verdict"],
             row["where"] + (f" ({row['kinks']} kinks moved)" if row.get("kinks") else "") + (
                 f" {row['note']}" if row.get("note") else ""))
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, (28, 7, 18, 9, 10, 6, 0))).rstrip()

