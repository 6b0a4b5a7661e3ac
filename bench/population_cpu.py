"""A population step against its members' single-model steps run one after another (issue 19).

For N members (learning rates of one sweep) of a small CNN and of an MLP, prints the median time of:
one model's compiled step; N of them in sequence (N separate runs, as a user would without populations);
the population step with the members vmapped (``members="vmap"``) and run one after another inside the one
program (``members="map"``, the CPU default). Run it alone on an idle machine:

    python bench/population_cpu.py                  # N=4, batch 64, 28x28x1 CNN and a 784-256-256-10 MLP
    python bench/population_cpu.py --members 8 --reps 30
    python bench/population_cpu.py --tiny           # a seconds-long check that it runs
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore import layers as L
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.population import init_population, population_step


def models(tiny):
    size, width = (8, 4) if tiny else (28, 16)
    cnn = L.serial(L.Conv2D(width, 3), L.Relu, L.MaxPool((2, 2)), L.Conv2D(2 * width, 3), L.Relu,
                   L.GlobalAvgPool(), L.Dense(10))
    mlp = L.serial(L.Flatten(), L.Dense(16 if tiny else 256), L.Relu, L.Dense(16 if tiny else 256), L.Relu,
                   L.Dense(10))
    return {"cnn": (cnn, (size, size, 1)), "mlp": (mlp, (size, size, 1))}


def timed(fn, states, batch, reps):
    """Median seconds of one round of ``states[i] = fn(states[i], batch)`` for every state in ``states``, one
    after another (compiled and warmed first)."""
    states = list(states)
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        for i, s in enumerate(states):
            states[i], m = fn(s, batch)
        jax.block_until_ready((states, m))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    n, batch, reps = a.members, (8 if a.tiny else a.batch), (2 if a.tiny else a.reps)
    lrs = list(np.logspace(-3, -1, n))
    print(f"backend {jax.default_backend()}, {n} members, batch {batch}, median of {reps}")
    for name, (model, shape) in models(a.tiny).items():
        rng = np.random.default_rng(0)
        b = {"x": rng.normal(size=(batch,) + shape).astype(np.float32), "y": rng.integers(0, 10, batch)}
        spec = jax.ShapeDtypeStruct((batch,) + shape, jnp.float32)
        loss = classifier_loss(model)
        tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
        step = train_step(loss, tx)
        singles = [init_state(model, spec, tx, seed=i) for i in range(n)]
        row = {"one model": timed(step, [init_state(model, spec, tx, seed=n)], b, reps),
               f"{n} in sequence": timed(step, singles, b, reps)}
        for form in ("vmap", "map"):
            pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(n), learning_rate=lrs)
            row[f"population {form}"] = timed(population_step(loss, tx, members=form), [pop], b, reps)
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in row.items())
              + f"; population map / sequence {row['population map'] / row[f'{n} in sequence']:.2f}, "
              f"vmap / sequence {row['population vmap'] / row[f'{n} in sequence']:.2f}")


if __name__ == "__main__":
    main()
