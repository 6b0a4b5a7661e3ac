"""Stress the gradient checker's compile options against XLA:CPU: catalog-layer checks compiled with the rule's
fast options, each followed by fresh ordinary functions compiled with XLA's defaults, every cache cleared and
collected every 10 checks, for a given time. A crash (segmentation fault) ends the process with a signal; the
last line says how many programs each way compiled without one.

    python bench/compile_stress.py --minutes 15                 # the rule's options
    python bench/compile_stress.py --minutes 15 --options O0    # -O0 alone (session 7's rule)
"""
import argparse
import faulthandler
import gc
import time

import jax
import jax.numpy as jnp
import numpy as np

from deepcore import catalog
from deepcore.gradcheck import cases, compiling, problem
from deepcore.gradcheck.cli import _check


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--options", choices=("rule", "O0"), default="rule")
    a = ap.parse_args()
    faulthandler.enable()
    compiling.ENABLED = True
    if a.options == "O0":
        compiling.FAST_COMPILE = {"xla_backend_optimization_level": 0}
    layers, start, i, ordinary = list(catalog.LAYER_CASES), time.time(), 0, 0
    while time.time() - start < 60 * a.minutes:
        _check("layer", layers[i % len(layers)], i, ("fast", "fwd-rev"), False)   # as the CLI checks it
        for k in range(3):   # new functions, new shapes: ordinary compiles at XLA's defaults
            n = 3 + (i * 7 + k) % 29
            x, y = np.ones((n, n + 1), np.float32), np.ones((n + 1, n), np.float32)
            jax.jit(lambda x, y, k=k: jnp.sum(jnp.tanh(x @ y + k) ** 2) + jax.nn.logsumexp(x))(x, y).block_until_ready()
            jax.jit(jax.grad(lambda x, y, k=k: jnp.sum(jax.nn.gelu(x @ y) * (k + 1))))(x, y).block_until_ready()
            ordinary += 2
        if i % 10 == 9:
            jax.clear_caches(), problem._CACHE.clear(), cases._initialiser.cache_clear(), cases._MADE.clear()
            gc.collect()
        i += 1
    print(f"compile stress ({a.options}): {i} checks, {compiling.COUNTS['fast']} programs compiled fast, "
          f"{ordinary} ordinary compiles, {time.time() - start:.0f}s, no crash", flush=True)


if __name__ == "__main__":
    main()
