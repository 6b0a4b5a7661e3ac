"""Generation speed: the KV cache against recomputing the full context for every token.

Model: W4's GPT (bench-workloads.md: vocab 96, d 256, 4 heads, 4 layers, learned positions, pre-LN, tanh GELU,
untied head) with ``max_len = prompt + new tokens`` so 256 new tokens fit, random N(0, 0.02) weights. Both
decoders are jit-compiled once; each round times one synced greedy generation of each, interleaved, and the
figure is the median over rounds, plus the first call (trace + compile). Also checks the tokens are identical.

    python bench/kv_cache.py [--tokens 256] [--prompt 16] [--batch 1] [--rounds 5]
"""
import argparse
import time

import jax
import numpy as np

from deepcore.models.generate import generate, generate_uncached
from deepcore.models.transformer import LMConfig, lm_init


def timed(fn):
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    cfg = LMConfig(vocab_size=96, d_model=256, num_layers=4, num_heads=4, max_len=args.prompt + args.tokens)
    params = lm_init(cfg, jax.random.PRNGKey(0))
    prompt = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.prompt), 0, cfg.vocab_size)
    runs = {"kv_cache": lambda: generate(cfg, params, prompt, args.tokens, greedy=True),
            "recompute": lambda: generate_uncached(cfg, params, prompt, args.tokens, greedy=True)}

    first, tokens = {}, {}
    for name, fn in runs.items():
        first[name], (tokens[name], _) = timed(fn)
    same = bool(np.array_equal(tokens["kv_cache"], tokens["recompute"]))
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            times[name].append(timed(fn)[0])

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; batch {args.batch}, prompt {args.prompt}, "
          f"{args.tokens} new tokens, {args.rounds} rounds")
    for name in runs:
        med = float(np.median(times[name]))
        print(f"{name:10s} first call {first[name]:7.2f} s   median {med * 1e3:9.1f} ms   "
              f"{args.batch * args.tokens / med:9.0f} tokens/s")
    ratio = np.median(times["recompute"]) / np.median(times["kv_cache"])
    print(f"speed-up of the KV cache: {ratio:.1f}x (target >= 5x); identical greedy tokens: {same}")


if __name__ == "__main__":
    main()
