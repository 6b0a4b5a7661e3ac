"""Datasets and input pipelines: TFDS names (offline-capable), in-memory or streamed batching, JAX augmentations.

Index:

Loading
    load(name, split, data_dir=)         a :class:`Dataset` (``.arrays`` dict, ``.info``), offline from local files
    load_text(name_or_path, split)       a text corpus; Vocab, build_vocab, encode, decode (characters)
    carve_validation, data_source, network_available, DatasetInfo, DatasetUnavailable
Streaming from disk (Grain; the same batches as in memory)
    image_batches("stream" | "memory", name, split, batch_size)   a named image split either way
    stream(name, split, batch_size), stream_batches(source, batch_size)   a :class:`StreamPipeline`
    packed_text(documents, seq_len, batch_size)   packed LM batches; index_documents, packing_waste
    stream_channel_stats, INPUTS
Batching (deterministic from ``(seed, epoch)``, resumable from any step, sharded over processes)
    make_batches(arrays, batch_size, seed)   a :class:`Pipeline`; ``pipe.batches(start_step)``
    lm_windows(tokens, seq_len, batch_size)  language-model windows (random or sequential)
    windows(series, input_len, horizon)      forecasting windows over a numeric series; split_series (time order)
    split_windows(series, fractions, input_len, horizon)   train/val/test windows, inputs reaching back
    load_series(name)                    a real series bundled with statsmodels (:data:`SERIES`), no import of it
    epoch_permutation, channel_stats, to_device, prefetch
Text corpora for language models
    load_corpus(name)                    train/validation ids with the training vocabulary (:class:`Corpus`)
    eval_windows, window_nll, write_samples   exact validation windows, their NLL, samples.txt
One-class anomaly detection (Golan & El-Yaniv 2018's protocol and self-labelled task)
    one_class_split(train, test, c)      the rows of class c to train on; every test row, marked "normal"
    geometric_transforms, gather_indices, transform_images, all_transforms   flips, shifts, quarter turns
Bilingual dictionaries (FreeDict, offline: Debian ``dict-freedict-*``) for character-level translation
    load_dictionary(pair)                (source, translation) pairs split by headword; encode_pairs, decode_ids
Augmentations (pure JAX, ``f(key, image) -> image``; ``batched`` maps one over a batch)
    random_crop, random_flip, random_erasing, normalize, compose, batched

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
from deepcore.data.windows import split_series, split_windows, windows  # noqa: F401
from deepcore.data.series import SERIES, Series, load_series  # noqa: F401
from deepcore.data.oneclass import one_class_split  # noqa: F401
from deepcore.data.geometric import all_transforms, gather_indices, geometric_transforms, transform_images  # noqa: F401
from deepcore.data.dictionary import TranslationData, decode_ids, encode_pairs, load_dictionary  # noqa: F401

__all__ = [
    "load", "load_text", "Dataset", "DatasetInfo", "DatasetUnavailable", "carve_validation", "data_source",
    "network_available", "Vocab", "build_vocab", "encode", "decode",
    "make_batches", "Pipeline", "lm_windows", "windows", "split_series", "split_windows",
    "load_series", "Series", "SERIES", "epoch_permutation", "channel_stats",
    "to_device", "prefetch",
    "image_batches", "stream", "stream_batches", "StreamPipeline", "stream_channel_stats", "INPUTS", "packed_text",
    "index_documents", "packing_waste", "Corpus", "load_corpus", "eval_windows", "window_nll", "write_samples",
    "load_dictionary", "encode_pairs", "decode_ids", "TranslationData",
    "random_crop", "random_flip", "random_erasing", "normalize", "compose", "batched",
    "one_class_split", "geometric_transforms", "gather_indices", "transform_images", "all_transforms",
]
