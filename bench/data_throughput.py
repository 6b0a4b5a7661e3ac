"""Input-pipeline throughput on Fashion-MNIST train: batches per second at a given batch size.

    python bench/data_throughput.py --data-dir /tmp/tfds --batch-size 128

Routes (median of --repeats runs each):
  memory        deepcore.data.make_batches over the split held in memory (numpy fancy indexing)
  memory+device the same, each batch placed on the default device and augmented in a jitted function
  data_source   tfds.data_source over the prepared array_record files, one __getitems__ per batch
  stream        deepcore.data.image_batches("stream", ...): Grain over the same files, the in-memory path's
                batches, read in --threads threads, or in --workers worker processes (issue 23)
  packed text   deepcore.data.packed_text over deepcore_documents/fortunes, --seq-len x batch rows
The dataset is prepared offline into --data-dir first if it is not there yet (timed separately).
"""
import argparse
import statistics
import tempfile
import time
from functools import partial

import jax
import numpy as np
import tensorflow_datasets as tfds

from deepcore import data


def rate(fn, steps, repeats):
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(steps)
        runs.append(steps / (time.perf_counter() - t))
    return statistics.median(runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="TFDS data_dir (default: a fresh temporary directory)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--source-steps", type=int, default=100, help="batches per data_source / stream run")
    p.add_argument("--threads", type=int, default=4, help="stream: Grain reader threads")
    p.add_argument("--workers", type=int, default=2, help="stream: Grain worker processes for the second route")
    p.add_argument("--seq-len", type=int, default=128, help="packed text: tokens per row")
    args = p.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tfds-")
    B = args.batch_size

    t = time.perf_counter()
    data.data_source("fashion_mnist", "train", data_dir=data_dir, download=False)
    print(f"prepare (or find) fashion_mnist in {data_dir}: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    ds = data.load("fashion_mnist", "train+validation", data_dir=data_dir, download=False)
    print(f"load 'train+validation' into memory: {time.perf_counter() - t:.2f} s, {len(ds)} examples")

    pipe = data.make_batches(ds.arrays, B, seed=0, process_index=0, process_count=1)
    steps = pipe.steps_per_epoch

    def memory(n):
        for _, b in zip(range(n), pipe.batches(0)):
            pass

    augment = jax.jit(lambda key, x: data.batched(data.compose(partial(data.random_crop, padding=2),
                                                               data.random_flip))(key, data.normalize(x)))

    def memory_device(n):
        out = None
        for i, b in zip(range(n), pipe.batches(0)):
            out = augment(jax.random.PRNGKey(i), data.to_device(b)["image"])
        out.block_until_ready()

    memory_device(2)  # compile
    src = data.data_source("fashion_mnist", "train", data_dir=data_dir, download=False)
    order = np.random.default_rng(0).permutation(len(src))

    def source(n):
        for i in range(n):
            exs = src.__getitems__(order[i * B:(i + 1) * B].tolist())
            {"image": np.stack([e["image"] for e in exs]), "label": np.array([e["label"] for e in exs], np.int32)}

    def streamed(workers):
        pipe = data.image_batches("stream", "fashion_mnist", "train+validation", B, seed=0, data_dir=data_dir,
                                  download=False, process_index=0, process_count=1, num_threads=args.threads,
                                  num_workers=workers)
        it = pipe.batches(0)
        next(it)   # start-up (thread pool, worker processes) is not throughput

        def run(n):
            for _, b in zip(range(n), it):
                pass
        return run

    docs = data.data_source("fortunes", "train", data_dir=data_dir, download=False, documents=True)
    packed = data.packed_text(docs, args.seq_len, B, seed=0, process_index=0, process_count=1,
                              num_threads=args.threads)

    packed_it = packed.batches(0)
    next(packed_it)

    def packed_run(n):
        for _, b in zip(range(n), packed_it):
            pass

    results = {
        "memory": rate(memory, steps, args.repeats),
        "memory+device+augment(jit)": rate(memory_device, steps, args.repeats),
        "tfds data_source": rate(source, args.source_steps, args.repeats),
        f"stream ({args.threads} threads)": rate(streamed(0), args.source_steps, args.repeats),
        f"stream ({args.workers} workers)": rate(streamed(args.workers), args.source_steps, args.repeats),
        f"packed text (T={args.seq_len})": rate(packed_run, args.source_steps, args.repeats),
    }
    print(f"batch {B}, jax {jax.__version__} on {jax.devices()[0].platform}, tfds {tfds.__version__}")
    for k, v in results.items():
        print(f"{k:>28}: {v:10.1f} batches/s  ({v * B:,.0f} examples/s)")


if __name__ == "__main__":
    main()
