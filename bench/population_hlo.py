"""Why N unrolled copies in one program run slower on a CPU than N dispatches of one copy (issue 19): no timing.

Compiles (does not run) the small CNN's single-model step, the population step with ``members="unroll"`` and the
single-member program of ``members="sequential"``, with the options the step builders choose (YNNPACK fusions:
the programs have convolutions), and prints from XLA's compiled, scheduled HLO: the temporary buffer memory of
each program, the count of each instruction kind, and the schedule of the convolutions and library (YNNPACK)
fusions in the unrolled program as run lengths of their op names. ``4 x jvp()/add`` means the four members' copies of that op
run back to back, i.e. the scheduler interleaves the copies layer by layer instead of finishing one member first:

    python bench/population_hlo.py               # N=4, batch 64, 28x28x1 (the sizes of population_cpu.py)
    python bench/population_hlo.py --tiny
"""
import argparse
import collections
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.compile_options import YNN_FUSION
from deepcore.train.population import init_population, population_step
from population_cpu import models


def compiled(jitted, *args):
    return jitted.lower(*args).compile(compiler_options=YNN_FUSION)


def entry_ops(text):
    """Op kinds (fusion kinds split out) of the ENTRY computation, and the op names of its convolutions and
    library fusions in schedule order."""
    entry = text[text.index("\nENTRY"):]
    entry = entry[:entry.index("\n}")]
    kinds, library = collections.Counter(), []
    for line in entry.splitlines()[1:]:
        m = re.search(r"= \S+ ([a-z-]+)\(", line)
        if not m:
            continue
        kind = re.search(r"kind=(k[A-Za-z]+)", line)
        kinds[m.group(1) + (f"[{kind.group(1)}]" if kind else "")] += 1
        if (kind and kind.group(1) == "kCustom") or m.group(1) == "convolution":
            name = re.search(r'op_name="jit\([a-z_]*\)/([^"]*)"', line)
            library.append(name.group(1) if name else "?")
    return kinds, library


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    n, batch = a.members, (8 if a.tiny else a.batch)
    model, shape = models(a.tiny)["cnn"]
    spec = jax.ShapeDtypeStruct((batch,) + shape, jnp.float32)
    rng = np.random.default_rng(0)
    b = {"x": rng.normal(size=(batch,) + shape).astype(np.float32), "y": rng.integers(0, 10, batch)}
    loss, tx = classifier_loss(model), optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(n), learning_rate=[1e-3] * n)
    seq = population_step(loss, tx, members="sequential")
    zeros = jax.eval_shape(lambda: population_step(loss, tx, members="vmap").jitted(pop, b))[1]
    out = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)
    programs = {"one model": compiled(train_step(loss, tx).jitted, init_state(model, spec, tx, seed=0), b),
                f"unroll x{n}": compiled(population_step(loss, tx, members="unroll").jitted, pop, b),
                "sequential member": compiled(seq.one.jitted, pop, out, b, jnp.int32(0))}
    for name, c in programs.items():
        kinds, library = entry_ops(c.as_text())
        mem = c.memory_analysis()
        print(f"{name}: temp {mem.temp_size_in_bytes / 2**20:.2f} MiB; entry ops {dict(kinds.most_common(8))}")
        if name.startswith("unroll"):
            runs = [f"{len(list(g))} x {k}" for k, g in itertools.groupby(library)]
            print(f"  convolutions and library fusions in schedule order: {'; '.join(runs[:24])}{' ...' if len(runs) > 24 else ''}")


if __name__ == "__main__":
    main()
