"""The gradient checker's four speed figures (issue 20), each a ratio or time measured in this one process.

    python bench/gradcheck_speed.py                 # all four, on an otherwise idle machine
    python bench/gradcheck_speed.py --only cnn,mlp  # a subset: cnn, mlp, layers, catalog
    python bench/gradcheck_speed.py --only catalog --cache /tmp/gc-cache   # run twice: the second loads compiles
    python bench/gradcheck_speed.py --only layers,catalog,rule --filter '^relu$'   # a smoke run
    python bench/gradcheck_speed.py --only mlp --small-n 1e12   # the compile rule's fast options at 10M numbers too
    python bench/gradcheck_speed.py --only options --filter '^(dense|conv2d|lstm)$'   # compile-option A/B
    python bench/gradcheck_speed.py --only leafwise,everymode   # the 10M MLP: its kernel's options, every mode

1. cnn: whole-model fast check (float64, parameters) of a 2,098-parameter VGG on 4 28x28 images, over one
   compile-and-gradient of the same loss in float32 (target <= 3).
2. mlp: fast check of 3-layer MLPs of ~10k and ~10M parameters; the larger's cost beyond its own evaluations
   (the check's function/JVP/gradient counts times their measured compiled cost, at points moved in one leaf as
   fast mode moves them) over the smaller's (target <= 2); the raw time ratio is printed too.
3. layers: check_layer (every mode, train and eval, the catalog's tags) on each catalog layer: median seconds
   (target < 2).
4. catalog: ``python -m deepcore.gradcheck`` (fast + fwd-rev, one worker per core) wall seconds and failures
   (target <= 60 s, 0 failures), in a subprocess.
5. rule (A/B, not a target): the catalog's layer checks (fast + fwd-rev, as the CLI runs them) with the checker's
   compile rule (:mod:`deepcore.gradcheck.compiling`: small programs without LLVM optimisation) off and on,
   interleaved in this one process with every cache cleared before each check: wall and XLA compile seconds.
6. options (A/B, not a target): the programs the catalog layers' checks compile (``--filter``), each recompiled
   with XLA's defaults and with other compile options, three rounds: which options the rule should use.
7. leafwise (A/B, not a target): the 10M MLP's leafwise kernel compiled with the same option sets: compile and run
   seconds (``compiling.SMALL_WORK``).
8. everymode (not a target): ``check_grads`` on the 10M MLP in every mode, then each mode alone.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from deepcore import catalog
from deepcore.gradcheck import check_case, check_grads
from deepcore.models.cnn import VGG


def _seconds(fn):
    t = time.perf_counter()
    out = fn()
    jax.block_until_ready(out) if not hasattr(out, "ok") else None
    return time.perf_counter() - t, out


def cnn():
    model = VGG(10, ((16,), (8,), (8,)), hidden=(8,))
    x = np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype(np.float32)
    y = np.arange(4) % 10
    _, params, state = model.init(jax.random.key(0, impl="unsafe_rbg"), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    n = sum(a.size for a in jax.tree.leaves(params))

    def loss(p, x):
        logits, _ = model.apply(p, state, x, train=True)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])

    base, _ = _seconds(lambda: jax.jit(jax.grad(loss))(params, x))
    check, r = _seconds(lambda: check_grads(loss, (params, x), 0, argnames=("params", "x"), modes=("fast",)))
    print(f"cnn: {n} parameters, 4 images: fast check {check:.2f}s (ok={r.ok}), compile+gradient (float32) "
          f"{base:.2f}s: ratio {check / base:.2f} (target <= 3)", flush=True)


def _mlp(n_in, hidden, out=10, batch=4):
    rng = np.random.default_rng(0)
    dims = (n_in, *hidden, out)
    params = {f"dense_{i}": {"w": rng.standard_normal((a, b)) / np.sqrt(a), "b": np.zeros(b)}
              for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))}
    x, y = rng.standard_normal((batch, n_in)), np.arange(batch) % out

    def loss(p):
        h = x
        for i in range(len(dims) - 1):
            h = h @ p[f"dense_{i}"]["w"] + p[f"dense_{i}"]["b"]
            h = jnp.tanh(h) if i < len(dims) - 2 else h
        return -jnp.mean(jax.nn.log_softmax(h)[jnp.arange(batch), y])

    return params, loss


def _eval_cost(loss, params, evals):
    """Seconds of the check's own evaluations, made as fast mode makes them: its counts of function values and
    JVPs times the cost of one compiled float64 run at a point that differs from ``params`` in one leaf
    (``a + c a``; each fast-mode row moves only its own leaf, and every leaf has the same number of rows, so
    the cost is averaged over leaves), plus its gradients at ``params``; each measured as 8 runs in one
    compiled ``lax.map`` / 8 (forming the point included: a finite difference cannot evaluate anywhere else)."""
    with jax.enable_x64(True):
        leaves, treedef = jax.tree.flatten(jax.tree.map(jnp.asarray, params))

        def on(p, j, s):   # loss with leaf j of the leaf list p replaced (every leaf an argument: no constants)
            return loss(jax.tree.unflatten(treedef, p[:j] + [s] + p[j + 1:]))

        cs = jnp.arange(1.0, 9.0) * 1e-3
        runs = {"grad": [lambda p, c: jax.grad(loss)(jax.tree.map(lambda a: a + 0 * c, p))]}
        runs["f"] = [lambda p, c, j=j: on(p, j, p[j] + c * p[j]) for j in range(len(leaves))]
        runs["jvp"] = [lambda p, c, j=j: jax.jvp(lambda s: on(p, j, s), (p[j] + c * p[j],), (p[j],))
                       for j in range(len(leaves))]
        cost = 0.0
        for name, fns in runs.items():
            arg = jax.tree.unflatten(treedef, leaves) if name == "grad" else leaves
            each = []
            for fn in fns:
                eight = jax.jit(lambda p, cs, fn=fn: jax.lax.map(lambda c: fn(p, c), cs))
                jax.block_until_ready(eight(arg, cs))
                each.append(_seconds(lambda: eight(arg, cs * 2))[0] / 8)
            cost += evals.get(name, 0) * sum(each) / len(each)
    return cost


def mlp():
    rows = []
    for n_in, hidden in ((100, (60, 60)), (1000, (3000, 2300))):
        params, loss = _mlp(n_in, hidden)
        n = sum(a.size for a in jax.tree.leaves(params))
        t, r = _seconds(lambda: check_grads(loss, params, argnames=("params",), modes=("fast",)))
        own = _eval_cost(loss, params, r.evals)
        rows.append((n, t, own))
        print(f"mlp {n:,} parameters: fast check {t:.2f}s (ok={r.ok}, evals {r.evals}), its evaluations {own:.2f}s, "
              f"beyond them {t - own:.2f}s", flush=True)
    (n0, t0, e0), (n1, t1, e1) = rows
    print(f"mlp: {n1:,} vs {n0:,} parameters: beyond own evaluations {(t1 - e1) / (t0 - e0):.2f}x (target <= 2); "
          f"raw {t1 / t0:.2f}x", flush=True)


def layers(pattern=None):
    times = []
    for case in [c for c in catalog.LAYER_CASES if pattern is None or re.search(pattern, c.name)]:
        t, r = _seconds(lambda: check_case(case, seed=0, progress=False))
        times.append(t)
        print(f"  {case.name:28s} {t:6.2f}s {'ok' if r.ok else 'FAILED'}", flush=True)
    print(f"layers: check_layer on {len(times)} catalog layers: median {statistics.median(times):.2f}s, "
          f"max {max(times):.2f}s (target median < 2)", flush=True)


def rule(pattern=None):
    import collections

    from jax import monitoring

    from deepcore.gradcheck import cases, compiling, problem
    spent = collections.Counter()
    monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: spent.update({name: secs}) if name.endswith("backend_compile_duration") else None)
    small, total = compiling.SMALL_FLOPS, collections.Counter()
    for case in [c for c in catalog.LAYER_CASES if pattern is None or re.search(pattern, c.name)]:
        row = []
        for on in (False, True, False, True):
            compiling.SMALL_FLOPS = small if on else 0.0
            jax.clear_caches(), problem._CACHE.clear(), cases._initialiser.cache_clear(), cases._MADE.clear()
            spent.clear()
            kw = {} if (case.stochastic or case.stateful) else {"train": (False,)}
            t, r = _seconds(lambda: check_case(case, seed=0, modes=("fast", "fwd-rev"), progress=False, **kw))
            c = sum(spent.values())
            total.update({("on" if on else "off", "wall"): t, ("on" if on else "off", "compile"): c})
            row.append(f"{'on ' if on else 'off'} {t:5.2f}s (compile {c:5.2f}s){'' if r.ok else ' FAILED'}")
        print(f"  {case.name:28s} " + "  ".join(row), flush=True)
    compiling.SMALL_FLOPS = small
    print(f"rule: catalog layers, twice each: wall off {total['off', 'wall']:.1f}s / on {total['on', 'wall']:.1f}s, "
          f"XLA compile off {total['off', 'compile']:.1f}s / on {total['on', 'compile']:.1f}s", flush=True)


OPTION_SETS = {"XLA defaults": {}, "-O0": {"xla_backend_optimization_level": 0},
               "older emitter": {"xla_cpu_use_fusion_emitters": False},
               "-O1, older emitter": {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False},
               "-O0, older emitter (the rule's)": {"xla_backend_optimization_level": 0,
                                                   "xla_cpu_use_fusion_emitters": False}}


def options(pattern=None, rounds=3):
    from deepcore.gradcheck import compiling
    from deepcore.gradcheck.cli import _check
    lowered, keep = [], compiling.compile_lowered

    def record(low, opts=None, n=0):
        lowered.append(low)
        return keep(low, opts, n)

    compiling.compile_lowered = record
    for case in [c for c in catalog.LAYER_CASES if pattern is None or re.search(pattern, c.name)]:
        _check("layer", case, 0, ("fast", "fwd-rev"), False)   # as the CLI checks it
    compiling.compile_lowered = keep
    totals = {name: [] for name in OPTION_SETS}
    for _ in range(rounds):
        for name, opts in OPTION_SETS.items():
            jax.clear_caches()
            t = time.perf_counter()
            for low in lowered:
                low.compile(compiler_options=dict(opts))   # options given: never the lowering's cached one
            totals[name].append(time.perf_counter() - t)
    for name, ts in totals.items():
        print(f"options: {len(lowered)} programs, {name}: " + ", ".join(f"{t:.2f}s" for t in ts), flush=True)


def leafwise(rounds=3):
    """The 10M MLP's leafwise kernel, lowered once for the 24 rows of its fast check, compiled with each option set
    and run ``rounds`` times: compile seconds and median run seconds (what ``compiling.SMALL_WORK`` trades)."""
    from deepcore.gradcheck.problem import Problem
    params, loss = _mlp(1000, (3000, 2300))
    with jax.enable_x64(True):
        P = Problem(loss, (params,), (0,), ("params",), False, jnp.float64, np.random.default_rng(0))
        sizes = [int(np.prod(s)) for _, s in P.layout]
        lo = np.repeat([a for a, _ in P.layout], 4).astype(np.int64)
        hi = lo + np.repeat(sizes, 4)
        m, t = len(lo), P.theta0.device
        args = (t, (jnp.zeros(()), t), jnp.asarray(True), P.consts, P.u, jnp.arange(m, dtype=jnp.uint32),
                jnp.asarray(lo), jnp.asarray(hi), jnp.full(m, 1e-3), jnp.asarray(m, jnp.int32), None)
        lowered = jax.jit(P.k._directional(True, True, False)).lower(*args)
        print(f"leafwise: {m} rows touching {P.k.work(lo, False):,} numbers", flush=True)
        for name, opts in OPTION_SETS.items():
            tc, exe = _seconds(lambda: lowered.compile(compiler_options=dict(opts)))
            exe(*args)[0].block_until_ready()
            runs = [_seconds(lambda: exe(*args))[0] for _ in range(rounds)]
            print(f"leafwise: {name}: compile {tc:.2f}s, run {statistics.median(runs):.2f}s (median of {rounds})",
                  flush=True)


def every_mode():
    """``check_grads`` in every mode (fast, full, fwd-rev, second) on the 10M MLP: seconds, then each mode alone
    (each of a new function, so that it compiles its own kernels)."""
    params, loss = _mlp(1000, (3000, 2300))
    t, r = _seconds(lambda: check_grads(loss, params, argnames=("params",), progress=False))
    print(f"every mode: 10M MLP, all four modes {t:.2f}s (ok={r.ok}, evals {r.evals})", flush=True)
    for mode in ("fast", "full", "fwd-rev", "second"):
        fresh = lambda p: loss(p)  # noqa: E731  (a new function: its kernels are compiled again)
        t, r = _seconds(lambda: check_grads(fresh, params, argnames=("params",), modes=(mode,), progress=False))
        print(f"every mode: 10M MLP, {mode} alone {t:.2f}s, compiles included (ok={r.ok})", flush=True)


def cli(pattern=None, cache=None):
    t = time.perf_counter()
    extra = (["--filter", pattern] if pattern else []) + (["--cache", cache] if cache else [])
    out = subprocess.run([sys.executable, "-m", "deepcore.gradcheck", "--json", *extra], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    wall = time.perf_counter() - t
    res = json.loads(out.stdout[out.stdout.index("{"):])
    hits = f", compilation cache {res['cache_hits']} hits, {res['cache_misses']} misses" if cache else ""
    print(f"catalog: python -m deepcore.gradcheck {' '.join(extra)}: {wall:.1f}s wall, {len(res['rows'])} rows, "
          f"{res['failures']} failures{hits} (target <= 60 s, 0 failures)", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="cnn,mlp,layers,catalog",
                    help="comma-separated: cnn, mlp, layers, catalog, rule (the A/B of the compile rule), "
                         "options (compile options A/B), leafwise (the 10M kernel's options A/B), everymode "
                         "(the 10M MLP in every mode)")
    ap.add_argument("--filter", default=None, metavar="PATTERN",
                    help="layers, catalog, rule: only the catalog cases matching this (a smoke run, not the target)")
    ap.add_argument("--cache", default=None, metavar="DIR", help="catalog: the CLI's --cache DIR (persistent compiles)")
    ap.add_argument("--small-n", type=float, default=None,
                    help="the compile rule's SMALL_N (checks of fewer numbers compile their small programs fast)")
    a = ap.parse_args()
    if a.small_n is not None:
        from deepcore.gradcheck import compiling
        compiling.SMALL_N = a.small_n
    parts = a.only.split(",")
    parts_fns = (("cnn", cnn), ("mlp", mlp), ("layers", lambda: layers(a.filter)),
                 ("catalog", lambda: cli(a.filter, a.cache)), ("rule", lambda: rule(a.filter)),
                 ("options", lambda: options(a.filter)), ("leafwise", leafwise), ("everymode", every_mode))
    for name, fn in parts_fns:
        if name in parts:
            fn()
