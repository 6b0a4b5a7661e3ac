"""Write a large prepared TFDS image dataset (array_record, raw uint8 images) for the streaming-memory check.

    python bench/make_big_dataset.py --data-dir /tmp/big_tfds --gigabytes 4.2      # ~28,000 images 224x224x3
    python bench/stream_rss.py --data-dir /tmp/big_tfds                            # then: rm -rf /tmp/big_tfds

The images are incompressible noise (distinct windows of one random buffer), so the files hold the full
size on disk; labels are ``i % 1000``. Keep the directory out of the repository and delete it afterwards.
"""
import argparse
import os
import time

import numpy as np
import tensorflow_datasets as tfds

SHAPE = (224, 224, 3)


class BigImages(tfds.core.GeneratorBasedBuilder):
    """``{"image": uint8 (224, 224, 3), "label": int}`` in splits ``part0``, ``part1``, ... (see :func:`split`)."""
    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = tfds.core.Path(os.path.dirname(os.path.abspath(__file__)))
    NUM_EXAMPLES = 0
    PART = 5000   # examples per written split (0.75 GB)

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=SHAPE, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(num_classes=1000)}),
            disable_shuffling=True)   # written in key order: readers shuffle by index

    def _split_generators(self, dl_manager):
        # Without TensorFlow TFDS cannot write a split over 1 GB (its writer spills to disk through tf.io.gfile),
        # so the examples are written as parts under 1 GB each, read back as one split "part0+part1+...".
        bounds = np.linspace(0, self.NUM_EXAMPLES, -(-self.NUM_EXAMPLES // self.PART) + 1).astype(int)
        return {f"part{i}": self._generate_examples(lo, hi) for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))}

    def _generate_examples(self, lo, hi):
        size = int(np.prod(SHAPE))
        noise = np.random.default_rng(0).integers(0, 256, 64 * size, dtype=np.uint8)
        for i in range(lo, hi):
            off = (i * 7919) % (noise.size - size)        # a distinct window per example
            yield i, {"image": noise[off:off + size].reshape(SHAPE), "label": i % 1000}


def split(data_dir: str) -> str:
    """The TFDS split string of all the parts written under ``data_dir``: ``"part0+part1+..."``."""
    import json
    info = [os.path.join(r, "dataset_info.json") for r, _, fs in os.walk(data_dir) if "dataset_info.json" in fs]
    with open(info[0]) as f:
        names = sorted((s["name"] for s in json.load(f)["splits"]), key=lambda n: int(n[4:]))
    return "+".join(names)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--gigabytes", type=float, default=4.2)
    p.add_argument("--part", type=int, default=5000, help="examples per written split (each must stay under 1 GB)")
    args = p.parse_args()
    BigImages.PART = args.part
    BigImages.NUM_EXAMPLES = int(args.gigabytes * 1e9 / np.prod(SHAPE))
    t = time.perf_counter()
    BigImages(data_dir=args.data_dir, file_format="array_record").download_and_prepare()
    files = [os.path.join(r, f) for r, _, fs in os.walk(args.data_dir) for f in fs if "array_record" in f]
    size = sum(os.path.getsize(f) for f in files)
    print(f"big_images: {BigImages.NUM_EXAMPLES} examples, {size / 1e9:.2f} GB in {len(files)} array_record "
          f"file(s) under {args.data_dir}, written in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
