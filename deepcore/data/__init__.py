"""Datasets and input pipelines: TFDS names (offline-capable), in-memory or streamed batching, JAX augmentations.

    ds = deepcore.data.load("fashion_mnist", "train", data_dir=data_dir)   # arrays + info
    pipe = deepcore.data.make_batches(ds.arrays, batch_size=128, seed=0)
    for batch in pipe.batches(start_step): ...
    pipe = deepcore.data.image_batches("stream", "fashion_mnist", "train", 128, seed=0)   # same batches, from disk
    pipe = deepcore.data.packed_text(data_source("fortunes", "train", documents=True), seq_len=128, batch_size=32)
"""
from deepcore.data.augment import batched, compose, normalize, random_crop, random_erasing, random_flip  # noqa: F401
from deepcore.data.packing import index_documents, packed_text, packing_waste  # noqa: F401
from deepcore.data.pipeline import (Pipeline, channel_stats, epoch_permutation, make_batches,  # noqa: F401
                                    prefetch, to_device)
from deepcore.data.prepare import DatasetUnavailable, data_source, network_available  # noqa: F401
from deepcore.data.sources import Dataset, DatasetInfo, carve_validation, load, load_text  # noqa: F401
from deepcore.data.stream import (INPUTS, StreamPipeline, image_batches, stream, stream_batches,  # noqa: F401
                                  stream_channel_stats)
from deepcore.data.text import Vocab, build_vocab, decode, encode, lm_windows  # noqa: F401
from deepcore.data.corpus import Corpus, eval_windows, load_corpus, window_nll, write_samples  # noqa: F401
