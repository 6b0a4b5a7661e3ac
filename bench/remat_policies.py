"""Peak temporary memory and step time of the deepcore transformer step for each remat policy.

    python bench/remat_policies.py --workload W4L [--policies none,dots,nothing] [--layouts scan,unrolled]
                                   [--dtype float32] [--steps 10] [--tiny] [--json OUT]

Per (layout, policy): XLA's compiled memory analysis of the training step (temporary bytes: the activations
kept for the backward pass and the scratch; arguments and outputs: parameters, optimiser state, batch), the
compiled cost analysis' FLOPs, and the median synced step time over ``--steps`` steps after two warm-up steps.
``none`` is no remat: the scanned stack's default body policy (``transformer_stack.SCAN_POLICY``); ``--policies``
also takes ``scan-default-off`` (the scanned body with no policy at all: JAX's plain scan residuals).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.workloads import ADAM, CONFIGS, TINY, inputs  # noqa: E402
from deepcore.models import transformer_stack  # noqa: E402
from deepcore.models.transformer import TransformerLM  # noqa: E402
from deepcore.train import classifier_loss, init_state, train_step  # noqa: E402


def build(c, scan, policy, dtype):
    remat = None if policy in ("none", "scan-default-off") else policy
    net = TransformerLM(vocab_size=c["vocab"], d_model=c["d"], num_layers=c["layers"], num_heads=c["heads"],
                        max_len=c["T"], scan=scan, remat=remat)
    batch = {k: jnp.asarray(v) for k, v in inputs("W4", c).items()}
    tx = optax.adam(**ADAM)
    step = train_step(classifier_loss(net), tx, compute_dtype=None if dtype == "float32" else jnp.dtype(dtype))
    state = init_state(net, jax.ShapeDtypeStruct(batch["x"].shape, batch["x"].dtype), tx, seed=0)
    return step, state, batch


def measure(c, scan, policy, dtype, steps):
    saved = transformer_stack.SCAN_POLICY
    if policy == "scan-default-off":
        transformer_stack.SCAN_POLICY = None
    try:
        step, state, batch = build(c, scan, policy, dtype)
        t0 = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t0
    finally:
        transformer_stack.SCAN_POLICY = saved
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        state, m = compiled(state, batch)
        float(jax.block_until_ready(m["loss"]))
        if i >= 2:
            times.append(time.perf_counter() - t)
    return {"layout": "scan" if scan else "unrolled", "policy": policy, "compile_s": round(compile_s, 2),
            "temp_mb": mem.temp_size_in_bytes / 2**20, "args_mb": mem.argument_size_in_bytes / 2**20,
            "flops": cost.get("flops"), "step_ms": 1e3 * statistics.median(times), "loss": float(m["loss"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="W4L")
    ap.add_argument("--policies", default="none,dots,dots_no_batch,names:mlp_hidden,attn_out,nothing")
    ap.add_argument("--layouts", default="scan,unrolled")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="the tiny test sizes (a smoke run)")
    ap.add_argument("--json")
    args = ap.parse_args()
    c = (TINY if args.tiny else CONFIGS)[args.workload]
    policies = [p for p in args.policies.split(",") if p]
    # "names:a,b" arrives split at its commas: glue the names back onto their "names:"/"offload:" head
    merged = []
    for p in policies:
        if merged and ":" in merged[-1] and p not in ("none", "dots", "dots_no_batch", "nothing", "everything",
                                                       "scan-default-off") and ":" not in p:
            merged[-1] += "," + p
        else:
            merged.append(p)
    rows = []
    for layout in args.layouts.split(","):
        for policy in merged:
            r = measure(c, layout == "scan", policy, args.dtype, args.steps)
            rows.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    base = {r["layout"]: r for r in rows if r["policy"] == "none"}
    print(f"\n{args.workload} {args.dtype} on {jax.devices()[0].device_kind}")
    print("| layout | policy | temp MiB | vs none | step ms | vs none | compile s |\n|---|---|---|---|---|---|---|")
    for r in rows:
        b = base.get(r["layout"])
        print(f"| {r['layout']} | {r['policy']} | {r['temp_mb']:.1f} | "
              f"{b['temp_mb'] / r['temp_mb'] if b else float('nan'):.2f}x less | {r['step_ms']:.1f} | "
              f"{r['step_ms'] / b['step_ms'] if b else float('nan'):.2f}x | {r['compile_s']} |")


if __name__ == "__main__":
    main()
