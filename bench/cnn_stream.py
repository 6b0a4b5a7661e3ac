"""The CNN experiment with its training batches streamed from disk (issue 23's ``--input stream``), unedited.

    python bench/cnn_stream.py --input stream [--stream-threads 2] [--stream-workers 0] -- --out /tmp/cnn_stream
    python bench/cnn_stream.py --input memory -- --out /tmp/cnn_memory           # the same run, in memory

Everything after ``--`` goes to ``experiments/cnn.py``. The training pipeline that the experiment builds with
``deepcore.data.make_batches`` is replaced by ``deepcore.data.image_batches("stream", ...)`` over the prepared
TFDS files (the same split, seed and options: the same batch at every step, checked on the first batch);
evaluation stays in memory. At the end it prints the run's mean ``data_wait_fraction`` (from
metrics.jsonl) and its test accuracy (results.json). What an experiment's ``--input`` flag would do, shown
here without editing experiments/.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", choices=("memory", "stream"), default="stream")
    p.add_argument("--stream-threads", type=int, default=2)
    p.add_argument("--stream-workers", type=int, default=0)
    ours, rest = p.parse_known_args()
    rest = [a for a in rest if a != "--"]
    import cnn
    import common
    import deepcore.data

    args = cnn.parser().parse_args(rest)
    in_memory = deepcore.data.make_batches

    def make_batches(arrays, batch_size, seed=0, **kw):
        if ours.input == "memory" or not kw.get("shuffle", True) or kw.get("num_epochs") is not None:
            return in_memory(arrays, batch_size, seed, **kw)    # evaluation pipelines stay in memory
        pipe = deepcore.data.image_batches("stream", args.dataset, "train", batch_size, seed, data_dir=args.data_dir,
                                           max_examples=len(arrays["label"]), num_threads=ours.stream_threads,
                                           num_workers=ours.stream_workers, **kw)
        first, want = pipe.batch(0), in_memory(arrays, batch_size, seed, **kw).batch(0)
        if not all(np.array_equal(first[k], want[k]) for k in want):
            raise SystemExit("cnn_stream: the streamed batch 0 differs from the in-memory one")
        print(f"cnn_stream: training batches streamed from {args.dataset} on disk ({pipe.num_examples} examples, "
              f"{ours.stream_threads} threads, {ours.stream_workers} workers)", flush=True)
        return pipe

    deepcore.data.make_batches = make_batches
    common.run(cnn.main, cnn.parser(), rest)
    with open(os.path.join(args.out, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    waits = [r["data_wait_fraction"] for r in recs if "data_wait_fraction" in r]
    with open(os.path.join(args.out, "results.json")) as f:
        res = json.load(f)
    acc = res.get("test_accuracy", res.get("metrics", {}).get("test_accuracy"))
    print(f"cnn_stream --input {ours.input}: mean data_wait_fraction {np.mean(waits) if waits else float('nan'):.4f} "
          f"(max {max(waits) if waits else float('nan'):.4f}, {len(waits)} records), test accuracy {acc}")


if __name__ == "__main__":
    main()
