"""Peak resident memory while streaming a whole prepared dataset (default: bench/make_big_dataset.py's).

    python bench/stream_rss.py --data-dir /tmp/big_tfds [--name big_images] [--workers 0] [--steps N]

Reads every batch of one epoch through ``deepcore.data.stream_batches`` (Grain over ``tfds.data_source``)
and prints the bytes read, the dataset's size on disk and the peak RSS of this process (VmHWM) and of its
worker processes. Not a timing: the figure is memory, and it does not depend on the machine's load.
"""
import argparse
import os
import resource
import time

import numpy as np
import tensorflow_datasets as tfds


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--name", default="big_images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=0, help="Grain worker processes (0: threads in this process)")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="stop after this many batches (default: one epoch)")
    args = p.parse_args()
    split = "train"
    if args.name == "big_images":
        import make_big_dataset  # registers the builder with TFDS
        split = make_big_dataset.split(args.data_dir)
    from deepcore.data import stream_batches

    start = rss_mb()
    src = tfds.data_source(args.name, split=split, data_dir=args.data_dir, download=False)
    files = [os.path.join(r, f) for r, _, fs in os.walk(args.data_dir) for f in fs if "array_record" in f]
    on_disk = sum(os.path.getsize(f) for f in files)
    pipe = stream_batches(src, args.batch_size, seed=0, process_index=0, process_count=1, num_epochs=1,
                          num_workers=args.workers, num_threads=args.threads)
    steps = pipe.steps_per_epoch if args.steps is None else min(args.steps, pipe.steps_per_epoch)
    read, labels, t = 0, np.zeros(1000, np.int64), time.perf_counter()
    for _, batch in zip(range(steps), pipe.batches(0)):
        read += sum(v.nbytes for v in batch.values())
        np.add.at(labels, batch["label"], 1)
    peak = rss_mb("VmHWM")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.name}: {len(src)} examples, {on_disk / 1e9:.2f} GB on disk; streamed {steps} batches of "
          f"{args.batch_size} = {read / 1e9:.2f} GB in {time.perf_counter() - t:.0f} s "
          f"({len(np.nonzero(labels)[0])} distinct labels)")
    print(f"peak RSS: {peak:.0f} MB this process (at start {start:.0f} MB), {children:.0f} MB largest worker "
          f"({args.workers} workers, {args.threads} threads)")


if __name__ == "__main__":
    main()
