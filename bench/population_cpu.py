"""A population step against its members' single-model steps run one after another (issue 19).

For N members (learning rates of one sweep) of a small CNN and of an MLP, prints the median time of: one model's
compiled step; N of them in sequence (N separate runs, as a user would without populations); the population step in
each form, side by side in one process on the same batch: ``members="sequential"`` (N dispatches of one compiled
single-member program; the CPU default for models with convolutions), ``"unroll"`` (N copies in one program; the CPU
default for others), ``"vmap"`` and ``"map"``; the population kept apart as a list of members (``unstack_members``:
each member's program, no cut and stack); and which form ``"auto"`` picks. "population again" is the noise floor:
the same N separate steps on a second set of states, timed like the others. Run it alone on an idle machine:

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
from deepcore.train.population import init_population, population_step, unstack_members


FORMS = ("sequential", "unroll", "vmap", "map")


def models(tiny):
    size, width = (8, 4) if tiny else (28, 16)
    cnn = L.serial(L.Conv2D(width, 3), L.Relu, L.MaxPool((2, 2)), L.Conv2D(2 * width, 3), L.Relu,
                   L.GlobalAvgPool(), L.Dense(10))
    mlp = L.serial(L.Flatten(), L.Dense(16 if tiny else 256), L.Relu, L.Dense(16 if tiny else 256), L.Relu,
                   L.Dense(10))
    return {"cnn": (cnn, (size, size, 1)), "mlp": (mlp, (size, size, 1))}


def timed(cases, batch, reps):
    """Seconds per rep of each case: ``cases[name] = (fn, states)``; one round of a case runs
    ``states[i] = fn(states[i], batch)`` for each of its states (a state may be a population, stacked or a list
    of members). The cases are interleaved, each rep running every case once in a fresh random order (the first
    rep compiles and is dropped), so a slow spell of a shared machine hits every case alike, no case always
    follows the cache-thrashing slow ones, and the per-rep ratios pair like with like."""
    times, order = {name: [] for name in cases}, np.random.default_rng(0)
    for r in range(reps + 1):
        for name in order.permutation(list(cases)):
            fn, states = cases[name]
            t0 = time.perf_counter()
            for i, s in enumerate(states):
                states[i], m = fn(s, batch)
            jax.block_until_ready((states, m))
            if r:
                times[name].append(time.perf_counter() - t0)
    return times


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
        pop = lambda: init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(n), learning_rate=lrs)
        auto = population_step(loss, tx)
        cases = {"one model": (step, [init_state(model, spec, tx, seed=n)]),
                 f"{n} in sequence": (step, [init_state(model, spec, tx, seed=i) for i in range(n)]),
                 "population again": (step, [init_state(model, spec, tx, seed=n + i) for i in range(n)])}
        cases.update({f"population {form}": (population_step(loss, tx, members=form), [pop()]) for form in FORMS})
        cases["population apart"] = (auto, [unstack_members(pop())])
        times = timed(cases, b, reps)
        auto(pop(), b)
        picked = list(auto._plans.values()) if hasattr(auto, "_plans") else ["vmap"]
        seq = times[f"{n} in sequence"]
        ratio = lambda form: statistics.median(a / b for a, b in zip(times[f"population {form}"], seq))  # noqa
        print(f"{name}: " + ", ".join(f"{k} {statistics.median(v) * 1e3:.2f} ms" for k, v in times.items())
              + "; median per-rep ratio to the sequence: " + ", ".join(f"{form} {ratio(form):.2f}"
                                                                       for form in FORMS + ("apart", "again"))
              + f"; auto picks {picked[0]}", flush=True)


if __name__ == "__main__":
    main()
