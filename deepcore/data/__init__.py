"""Datasets and input pipelines: TFDS names (offline-capable), in-memory batching, JAX augmentations.

    ds = deepcore.data.load("fashion_mnist", "train", data_dir=data_dir)   # arrays + info
    pipe = deepcore.data.make_batches(ds.arrays, batch_size=128, seed=0)
    for batch in pipe.batches(start_step): ...
"""
from deepcore.data.augment import batched, compose, normalize, random_crop, random_erasing, random_flip  # noqa: F401
from deepcore.data.pipeline import (Pipeline, channel_stats, epoch_permutation, make_batches,  # noqa: F401
                                    prefetch, to_device)
from deepcore.data.sources import (Dataset, DatasetInfo, DatasetUnavailable, carve_validation,  # noqa: F401
                                   data_source, load, load_text, network_available)
from deepcore.data.text import Vocab, build_vocab, decode, encode, lm_windows  # noqa: F401
from deepcore.data.windows import split_series, windows  # noqa: F401
