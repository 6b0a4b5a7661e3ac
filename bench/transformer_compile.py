"""Compile time against depth: a GPT training step with the blocks scanned (``lax.scan``) or unrolled.

W4's GPT (bench-workloads.md: vocab 96, d 256, 4 heads, context 128, batch 32) at each depth; one step =
value_and_grad of the cross-entropy + an Adam update, jit-compiled. For every (depth, layout) the time of
``jax.jit(step).lower(...)`` (trace + lower) and ``.compile()`` is measured with a fresh function each
repeat; repeats are interleaved over the configurations and the figure is the median.

    python bench/transformer_compile.py [--depths 2 16] [--repeats 3] [--unrolled]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.models.transformer import LMConfig, lm_apply, lm_init

B, T = 32, 128


def step_fn(cfg):
    opt = optax.adam(1e-3)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(lm_apply(cfg, p, x)[0], y).mean()

    def step(p, o, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    return step, opt


def measure(depth, scan):
    cfg = LMConfig(vocab_size=96, d_model=256, num_layers=depth, num_heads=4, max_len=T, scan=scan)
    params = jax.eval_shape(lambda k: lm_init(cfg, k), jax.random.PRNGKey(0))
    step, opt = step_fn(cfg)
    x = jax.ShapeDtypeStruct((B, T), jnp.int32)
    t0 = time.perf_counter()
    lowered = jax.jit(step).lower(params, jax.eval_shape(opt.init, params), x, x)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--unrolled", action="store_true", help="also time the unrolled (Python loop) layout")
    args = ap.parse_args()

    configs = [(d, True) for d in args.depths] + ([(d, False) for d in args.depths] if args.unrolled else [])
    measure(2, True)                                           # warm up the tracing machinery
    res = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            res[c].append(measure(*c))

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; GPT d256 h4 T{T} B{B}, Adam step; "
          f"median of {args.repeats}")
    total = {}
    for (depth, scan), r in res.items():
        lower, comp = np.median([a for a, _ in r]), np.median([b for _, b in r])
        total[depth, scan] = np.median([a + b for a, b in r])
        print(f"{'scan' if scan else 'unrolled':8s} {depth:3d} layers: trace+lower {lower:6.2f} s  "
              f"compile {comp:6.2f} s  total {total[depth, scan]:6.2f} s")
    lo, hi = min(args.depths), max(args.depths)
    print(f"scanned {hi} / {lo} layers: {total[hi, True] / total[lo, True]:.2f}x (target <= 1.5x)")
    if args.unrolled:
        print(f"unrolled {hi} / {lo} layers: {total[hi, False] / total[lo, False]:.2f}x")


if __name__ == "__main__":
    main()
