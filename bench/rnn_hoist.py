"""W3 (char-LM LSTM) training step: deepcore with the input projection hoisted out of the scan, kept inside it
(two matmuls per step, the default on CPU, or ``"fused"``: one ``[x_t, h] @ [wi; wh]`` matmul), and Flax linen's
``nn.RNN(nn.OptimizedLSTMCell)``, timed interleaved in one process.

W3 (bench-workloads.md): embed 96 -> 128, one LSTM layer with hidden 256 over T=64, dense 96, softmax
cross-entropy at all 64 positions, batch 64, float32, one Adam step (lr 1e-3) per step, a fixed batch from
``numpy.random.default_rng(0)``. Each round times ``--steps`` synced steps of every variant in turn (one step by
default, the order rotating each round, so load drift on a shared machine hits every variant alike); the figure is the median over all timed
steps, plus the first-step (trace + compile) latency. The median process CPU time per step is printed too: on a
machine shared with other jobs it moves less than wall time does.

    python bench/rnn_hoist.py [--rounds 40] [--steps 1] [--unroll 1]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore import layers as L
from deepcore.layers.recurrent import LSTM

V, E, H, T, B = 96, 128, 256, 64, 64


def batch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (B, T), dtype=np.int32)
    y = rng.integers(0, V, (B, T), dtype=np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def make_step(apply, params):
    opt = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)

    def loss_fn(p, x, y):
        logits = apply(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, o, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    return step, (params, opt.init(params))


def deepcore_variant(hoist, unroll):
    model = L.serial(L.Embedding(V, E), LSTM(H, hoist_input=hoist, unroll=unroll), L.Dense(V))
    _, params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((B, T), jnp.int32))
    return make_step(lambda p, x: model.apply(p, state, x)[0], params)


def flax_variant(unroll):
    import flax.linen as nn

    class CharLM(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Embed(V, E)(x)
            x = nn.RNN(nn.OptimizedLSTMCell(H), unroll=unroll)(x)
            return nn.Dense(V)(x)

    m = CharLM()
    params = m.init(jax.random.key(0), jnp.zeros((B, T), jnp.int32))
    return make_step(m.apply, params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--unroll", type=int, default=1)
    args = ap.parse_args()
    x, y = batch()
    variants = {"deepcore hoisted": deepcore_variant("hoisted", args.unroll),
                "deepcore in-loop (default)": deepcore_variant("per_step", args.unroll),
                "deepcore in-loop fused": deepcore_variant("fused", args.unroll),
                "flax linen OptimizedLSTMCell": flax_variant(args.unroll)}
    carry, times, cpu, first = {}, {k: [] for k in variants}, {k: [] for k in variants}, {}
    for name, (step, c) in variants.items():
        t0 = time.perf_counter()
        c = step(*c, x, y)[:2]
        jax.block_until_ready(c)
        first[name] = time.perf_counter() - t0
        for _ in range(3):  # warm-up
            c = step(*c, x, y)[:2]
        carry[name] = jax.block_until_ready(c)
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order: no variant always follows another
            step, c = variants[name][0], carry[name]
            for _ in range(args.steps):
                t0, p0 = time.perf_counter(), time.process_time()
                c = jax.block_until_ready(step(*c, x, y)[:2])
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - p0)
            carry[name] = c
    print(f"W3 on {jax.default_backend()} ({jax.devices()[0].device_kind}), unroll={args.unroll}, "
          f"{args.rounds} rounds x {args.steps} steps")
    ref, ref_cpu = np.median(times["flax linen OptimizedLSTMCell"]), np.median(cpu["flax linen OptimizedLSTMCell"])
    for name in variants:
        med, med_cpu = np.median(times[name]), np.median(cpu[name])
        print(f"  {name:30s} median {1e3 * med:7.1f} ms (x{med / ref:.2f} of flax), cpu {1e3 * med_cpu:7.1f} ms "
              f"(x{med_cpu / ref_cpu:.2f}); first step {first[name]:.2f} s")


if __name__ == "__main__":
    main()
