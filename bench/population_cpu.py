"""A population step against its members' single-model steps run one after another (issue 19).

For N members (learning rates of one sweep) of a small CNN and of an MLP, prints the median time of:
one model's compiled step; N of them in sequence (N separate runs, as a user would without populations);
the population step in each form, side by side in one process on the same batch: ``members="sequential"``
(N dispatches of one compiled single-member program; the CPU default for models with convolutions),
``"unroll"`` (N copies in one program; the CPU default for others), ``"vmap"`` and ``"map"``; and which form
``"auto"`` picks. Run it alone on an idle machine:

    python bench/population_cpu.py                  # N=4, batch 64, 28x28x1 CNN and a 784-256-256-10 MLP
    python bench/population_cpu.py --members 8 --reps 30
    python bench/population_cpu.py --tiny           # a seconds-long check that it runs
    python bench/population_cpu.py --conv-forms     # why vmap is slow on CPU: one grouped conv vs N plain ones

A vmapped convolution whose input and kernel both carry the member axis (every layer after the first, and
every kernel gradient) lowers to one convolution with ``feature_group_count=N``; ``--conv-forms`` times that
against N plain convolutions in one program, forward and kernel gradient.
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


FORMS = ("sequential", "unroll", "vmap", "map")


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


def conv_forms(n, reps):
    """Min seconds of one grouped convolution (the vmapped form) vs ``n`` plain ones, forward and kernel grad."""
    from jax import lax
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 13, 13, 16 * n)).astype(np.float32))   # members stacked on features
    w = jnp.asarray(rng.normal(size=(3, 3, 16, 32 * n)).astype(np.float32))
    xs, ws = jnp.split(x, n, -1), jnp.split(w, n, -1)
    conv = lambda a, b, g=1: lax.conv_general_dilated(a, b, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                      feature_group_count=g)
    forms = {
        "grouped forward": (jax.jit(lambda x, w: conv(x, w, n)), (x, w)),
        f"{n} plain forward": (jax.jit(lambda xs, ws: [conv(a, b) for a, b in zip(xs, ws)]), (xs, ws)),
        "grouped kernel grad": (jax.jit(jax.grad(lambda w, x: jnp.sum(conv(x, w, n) ** 2))), (w, x)),
        f"{n} plain kernel grads": (jax.jit(jax.grad(lambda ws, xs: sum(jnp.sum(conv(a, b) ** 2)
                                                                        for a, b in zip(xs, ws)))), (ws, xs)),
    }
    times = {k: [] for k in forms}
    for r in range(reps + 1):  # interleaved, the first round compiles
        for k, (f, args) in forms.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            if r:
                times[k].append(time.perf_counter() - t0)
    print(", ".join(f"{k} {min(v) * 1e3:.2f} ms" for k, v in times.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--conv-forms", action="store_true", help="time a grouped convolution against N plain ones")
    a = ap.parse_args()
    n, batch, reps = a.members, (8 if a.tiny else a.batch), (2 if a.tiny else a.reps)
    if a.conv_forms:
        return conv_forms(n, reps)
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
        auto = population_step(loss, tx)
        for form in FORMS:
            pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(n), learning_rate=lrs)
            row[f"population {form}"] = timed(population_step(loss, tx, members=form), [pop], b, reps)
        pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(n), learning_rate=lrs)
        auto(pop, b)
        picked = list(auto._plans.values()) if hasattr(auto, "_plans") else ["vmap"]
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in row.items())
              + "; " + ", ".join(f"{form} / sequence {row[f'population {form}'] / row[f'{n} in sequence']:.2f}"
                                 for form in FORMS) + f"; auto picks {picked[0]}")


if __name__ == "__main__":
    main()
