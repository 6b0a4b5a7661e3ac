"""Datasets and input pipelines: TFDS names (offline-capable), in-memory batching, JAX augmentations. Index:

Loading
    load(name, split, data_dir=)         a :class:`Dataset` (``.arrays`` dict, ``.info``), offline from local files
    load_text(name_or_path, split)       a text corpus; Vocab, build_vocab, encode, decode (characters)
    carve_validation, data_source, network_available, DatasetInfo, DatasetUnavailable
Batching (deterministic from ``(seed, epoch)``, resumable from any step, sharded over processes)
    make_batches(arrays, batch_size, seed)   a :class:`Pipeline`; ``pipe.batches(start_step)``
    lm_windows(tokens, seq_len, batch_size)  language-model windows (random or sequential)
    windows(series, input_len, horizon)      forecasting windows over a numeric series; split_series (time order)
    epoch_permutation, channel_stats, to_device, prefetch
Augmentations (pure JAX, ``f(key, image) -> image``; ``batched`` maps one over a batch)
    random_crop, random_flip, random_erasing, normalize, compose, batched

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

__all__ = [
    "load", "load_text", "Dataset", "DatasetInfo", "DatasetUnavailable", "carve_validation", "data_source",
    "network_available", "Vocab", "build_vocab", "encode", "decode",
    "make_batches", "Pipeline", "lm_windows", "windows", "split_series", "epoch_permutation", "channel_stats",
    "to_device", "prefetch",
    "random_crop", "random_flip", "random_erasing", "normalize", "compose", "batched",
]
