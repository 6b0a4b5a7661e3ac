"""Framework overhead of deepcore's train step vs a hand-written jax.jit + optax step (workload W1).

W1: MLP 784-512-512-10, ReLU, softmax cross-entropy, batch 256, Adam(1e-3), float32, a fixed batch
from numpy.random.default_rng(0). All steps run in this process, interleaved over several rounds
(order rotated each round); each round times >= 20 synced steps per implementation; reported: the
median over rounds of each round's median, its ratio to the hand-written step, and the median of the
per-round ratios and the fastest round (both robust to load from other processes on a shared machine). deepcore's default step also returns
the accuracy and the gradient norm (for the NaN guard); ``grad_norm=False`` drops the latter, and
"hand-written + grad norm" adds the same norm to the hand-written step (framework overhead at equal work).

    python bench/overhead.py [--rounds 7] [--steps 30]
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.layers import Dense, Relu, serial
from deepcore.train import classifier_loss, init_state, train_step


def hand_written(x, y, grad_norm: bool = False):
    """The floor: params as a dict, jax.jit with donation, optax.adam (``grad_norm``: also return the
    gradient's global norm, the same work as deepcore's default step)."""
    sizes = [784, 512, 512, 10]
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = [{"w": jax.nn.initializers.glorot_uniform()(k, (a, b)), "b": jnp.zeros(b)}
              for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
    tx = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    opt_state = tx.init(params)

    def loss_fn(params, x, y):
        h = x
        for i, p in enumerate(params):
            h = h @ p["w"] + p["b"]
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return optax.softmax_cross_entropy_with_integer_labels(h, y).mean()

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        out = {"loss": loss, "grad_norm": optax.tree.norm(grads)} if grad_norm else loss
        return optax.apply_updates(params, updates), opt_state, out

    step = jax.jit(step, donate_argnums=(0, 1))
    carry = {"p": params, "o": opt_state}

    def run():
        carry["p"], carry["o"], loss = step(carry["p"], carry["o"], x, y)
        return loss

    return run


def deepcore_step(x, y, **kw):
    model = serial(Dense(512), Relu, Dense(512), Relu, Dense(10))
    tx = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    step = train_step(classifier_loss(model), tx, **kw)
    carry = {"s": init_state(model, x, tx, seed=0)}
    batch = {"x": x, "y": y}

    def run():
        carry["s"], metrics = step(carry["s"], batch)
        return metrics["loss"]

    return run


def time_steps(run, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=30, help="synced steps per implementation per round (>= 20)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(256, 784)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 256).astype(np.int32))
    impls = {"hand-written jax.jit": hand_written(x, y), "deepcore train_step": deepcore_step(x, y),
             "deepcore grad_norm=False": deepcore_step(x, y, grad_norm=False),
             "hand-written + grad norm": hand_written(x, y, grad_norm=True)}
    for name, run in impls.items():  # compile and warm up
        t = time.perf_counter()
        jax.block_until_ready(run())
        print(f"{name}: first step (trace + compile) {1e3 * (time.perf_counter() - t):.0f} ms")
        time_steps(run, 10)
    per_round = {name: [] for name in impls}
    order = list(impls.items())
    for r in range(args.rounds):  # rotate the order each round so drift hits every implementation alike
        for name, run in order[r % len(order):] + order[:r % len(order)]:
            per_round[name].append(time_steps(run, args.steps))
    base = "hand-written jax.jit"
    same = per_round["hand-written + grad norm"]
    ratios = [a / b for a, b in zip(per_round["deepcore train_step"], same)]
    print(f"deepcore train_step vs hand-written + grad norm (the same work): median of per-round ratios "
          f"{statistics.median(ratios):.3f}")
    for name, v in per_round.items():
        ratios = [a / b for a, b in zip(v, per_round[base])]
        print(f"{name}: median {1e3 * statistics.median(v):.3f} ms/step; ratio to hand-written: "
              f"{statistics.median(v) / statistics.median(per_round[base]):.3f} (median of per-round ratios "
              f"{statistics.median(ratios):.3f}); fastest round {1e3 * min(v):.3f} ms (ratio {min(v) / min(per_round[base]):.3f}); "
              f"rounds ms: {' '.join(f'{1e3 * t:.2f}' for t in v)}")
    print(f"devices: {jax.devices()}")


if __name__ == "__main__":
    main()
