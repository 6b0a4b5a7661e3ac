"""Compare the compiled XLA programs of two implementations' steps (default: deepcore vs the hand-written
JAX step): jaxpr equation counts, optimised-HLO op counts by opcode, and XLA's cost analysis (FLOPs, bytes).

    python bench/hlo_compare.py --workload W1 [--a deepcore --b pure_jax] [--dtype float32] [--dump DIR]

``--dump`` writes both optimised HLO modules as text for a diff.
"""
import argparse
import collections
import importlib
import re
import sys
from pathlib import Path

import jax
import jax.extend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import MODULES  # noqa: E402
from bench.workloads import CONFIGS  # noqa: E402

OP = re.compile(r"=\s+(?:\([^=]*?\)|\S+)\s+([a-z][\w-]*)\(")


def program(impl, workload, dtype):
    step, state, batch = importlib.import_module(f"bench.workloads.{MODULES[impl]}").build(workload, CONFIGS[workload], dtype)
    jitted = getattr(step, "jitted", step)
    lowered = jitted.lower(state, batch)
    compiled = lowered.compile()
    jaxpr = jax.make_jaxpr(jitted)(state, batch)
    return jaxpr, compiled


def count_eqns(jaxpr):
    n = collections.Counter()

    def walk(j):
        for e in j.eqns:
            n[e.primitive.name] += 1
            for sub in jax.extend.core.jaxprs_in_params(e.params):
                walk(sub)
    walk(jaxpr.jaxpr)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", required=True)
    ap.add_argument("--a", default="deepcore")
    ap.add_argument("--b", default="pure_jax")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--dump")
    args = ap.parse_args()
    out = {}
    for impl in (args.a, args.b):
        jaxpr, compiled = program(impl, args.workload, args.dtype)
        text = re.sub(r"/\*.*?\*/", "", compiled.as_text())  # drop /*index=N*/ comments
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        out[impl] = (count_eqns(jaxpr), collections.Counter(OP.findall(text)), cost)
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            Path(args.dump, f"{args.workload}_{impl}.hlo.txt").write_text(text)
    (ja, ha, ca), (jb, hb, cb) = out[args.a], out[args.b]
    print(f"{args.workload} {args.dtype}: {args.a} vs {args.b}")
    print(f"  jaxpr equations: {sum(ja.values())} vs {sum(jb.values())}")
    for k in ("flops", "transcendentals", "bytes accessed"):
        print(f"  {k}: {ca.get(k, 0):.4g} vs {cb.get(k, 0):.4g}")
    print(f"  optimised HLO ops: {sum(ha.values())} vs {sum(hb.values())}; differing opcodes:")
    for op in sorted(set(ha) | set(hb)):
        if ha[op] != hb[op]:
            print(f"    {op}: {ha[op]} vs {hb[op]}")
    print("  jaxpr primitives that differ:")
    for op in sorted(set(ja) | set(jb)):
        if ja[op] != jb[op]:
            print(f"    {op}: {ja[op]} vs {jb[op]}")


if __name__ == "__main__":
    main()
