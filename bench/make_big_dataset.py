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
    """``{"image": uint8 (224, 224, 3), "label": int}``, ``--examples`` of them in ``train``."""
    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = tfds.core.Path(os.path.dirname(os.path.abspath(__file__)))
    NUM_EXAMPLES = 0

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=SHAPE, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(num_classes=1000)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(self.NUM_EXAMPLES)}

    def _generate_examples(self, n):
        size = int(np.prod(SHAPE))
        noise = np.random.default_rng(0).integers(0, 256, 64 * size, dtype=np.uint8)
        for i in range(n):
            off = (i * 7919) % (noise.size - size)        # a distinct window per example
            yield i, {"image": noise[off:off + size].reshape(SHAPE), "label": i % 1000}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--gigabytes", type=float, default=4.2)
    args = p.parse_args()
    BigImages.NUM_EXAMPLES = int(args.gigabytes * 1e9 / np.prod(SHAPE))
    t = time.perf_counter()
    BigImages(data_dir=args.data_dir, file_format="array_record").download_and_prepare()
    files = [os.path.join(r, f) for r, _, fs in os.walk(args.data_dir) for f in fs if "array_record" in f]
    size = sum(os.path.getsize(f) for f in files)
    print(f"big_images: {BigImages.NUM_EXAMPLES} examples, {size / 1e9:.2f} GB in {len(files)} array_record "
          f"file(s) under {args.data_dir}, written in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
