"""TFDS builders that prepare datasets from local files without TensorFlow.

``deepcore_images/{fashion_mnist,mnist,cifar10}`` and ``deepcore_text/{tiny_shakespeare,fortunes}``
write TFDS's on-disk format (array_record files + ``dataset_info.json``) under ``data_dir``, so every
later load is ``tfds.data_source("deepcore_images/fashion_mnist", data_dir=...)``.

Images are stored as raw ``uint8`` :class:`tfds.features.Tensor` (not PNG): nothing to encode on
write or decode on read. Source files come from ``download_config.manual_dir`` when it holds them
(Debian packages, files the user put under ``--data-dir``); otherwise from the upstream URLs through
TFDS's download manager (only reached when a network was found).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from deepcore.data import formats

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclasses.dataclass(eq=False)
class ImageConfig(tfds.core.BuilderConfig):
    shape: tuple = (28, 28, 1)
    class_names: tuple = ()
    fmt: str = "idx"              # "idx" or "cifar_binary"
    url: str = ""                 # upstream base URL (idx) or archive URL (cifar)
    homepage: str = ""


@dataclasses.dataclass(eq=False)
class TextConfig(tfds.core.BuilderConfig):
    url: Optional[str] = None     # a single upstream text file (tiny_shakespeare); None: local only
    boundary: Optional[bytes] = None   # record separator that split cuts snap to
    homepage: str = ""


def _read_images(cfg: ImageConfig, directory: str, split: str) -> tuple:
    if cfg.fmt == "idx":
        return formats.read_idx_split(directory, split)
    return formats.read_cifar10_split(directory, split)


class DeepcoreImages(tfds.core.GeneratorBasedBuilder):
    """Image classification datasets as raw uint8 tensors: ``{"image": (H, W, C) uint8, "label": int}``."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        ImageConfig(name="fashion_mnist", shape=(28, 28, 1), class_names=FASHION_CLASSES,
                    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    homepage="https://github.com/zalandoresearch/fashion-mnist"),
        ImageConfig(name="mnist", shape=(28, 28, 1), class_names=tuple(str(i) for i in range(10)),
                    url="https://storage.googleapis.com/cvdf-datasets/mnist/",
                    homepage="http://yann.lecun.com/exdb/mnist/"),
        ImageConfig(name="cifar10", shape=(32, 32, 3), class_names=CIFAR10_CLASSES, fmt="cifar_binary",
                    url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                    homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=cfg.shape, dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
            }),
            supervised_keys=("image", "label"),
            homepage=cfg.homepage,
        )

    def _source_dir(self, dl_manager) -> str:
        cfg = self.builder_config
        manual = dl_manager._manual_dir  # may be None; .manual_dir would raise
        if manual is not None:
            manual = os.fspath(manual)
            ok = (formats.find_idx(manual, "train") and formats.find_idx(manual, "test")) \
                if cfg.fmt == "idx" else formats.has_cifar10(manual)
            if ok:
                return manual
        if cfg.fmt == "idx":
            names = [s + ".gz" for pair in formats.IDX_FILES.values() for s in pair]
            paths = dl_manager.download({n: cfg.url + n for n in names})
            return os.path.dirname(os.fspath(paths[names[0]]))
        path = dl_manager.download(cfg.url)
        return os.path.dirname(os.fspath(path))

    def _split_generators(self, dl_manager):
        directory = self._source_dir(dl_manager)
        return {split: self._generate_examples(directory, split) for split in ("train", "test")}

    def _generate_examples(self, directory: str, split: str):
        images, labels = _read_images(self.builder_config, directory, split)
        for i in range(len(labels)):
            yield i, {"image": images[i], "label": int(labels[i])}


class DeepcoreText(tfds.core.GeneratorBasedBuilder):
    """Character-level corpora: one example per split, ``{"text": bytes}``, the split's exact bytes.

    ``tiny_shakespeare`` is cut 90/5/5 by characters exactly like TFDS's own builder. ``fortunes``
    is every fortune file (see :func:`formats.fortune_files`) concatenated in name order, cut
    90/5/5 at fortune boundaries; train + validation + test reproduce the corpus byte for byte.
    """

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        TextConfig(name="tiny_shakespeare",
                   url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                   homepage="https://github.com/karpathy/char-rnn"),
        TextConfig(name="fortunes", boundary=b"\n%\n",
                   homepage="https://tracker.debian.org/pkg/fortune-mod"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage=self.builder_config.homepage,
        )

    def _corpus(self, dl_manager) -> bytes:
        cfg = self.builder_config
        manual = dl_manager._manual_dir
        manual = os.fspath(manual) if manual is not None else None
        if cfg.name == "fortunes":
            files = formats.fortune_files(manual) if manual and os.path.isdir(manual) else []
            if not files:
                raise FileNotFoundError(f"no fortune files in {manual}")
            return formats.read_corpus(files)
        local = os.path.join(manual, "input.txt") if manual else None
        path = local if local and os.path.isfile(local) else os.fspath(dl_manager.download(cfg.url))
        return formats.read_corpus([path])

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        corpus = self._corpus(dl_manager)
        if cfg.boundary is None:   # cut by characters, as TFDS does
            pieces = [p.encode("utf-8", "surrogateescape")
                      for p in formats.split_text(corpus.decode("utf-8", "surrogateescape"))]
        else:
            pieces = formats.split_text(corpus, boundary=cfg.boundary)
        names = ("train", "validation", "test")
        return {n: self._generate_examples(n, p) for n, p in zip(names, pieces)}

    def _generate_examples(self, split: str, text: bytes):
        yield split, {"text": text}


def split_documents(text: bytes, separator: bytes = b"\n%\n") -> list:
    """The documents of a corpus piece: ``text`` cut at ``separator`` (kept out), empty pieces dropped."""
    return [d for d in text.split(separator) if d.strip()]


class DeepcoreDocuments(DeepcoreText):
    """The text corpora one document per record, ``{"text": bytes}``, for streaming and packing.

    Same corpus and same train/validation/test cuts as :class:`DeepcoreText`; a split's records are its
    documents (fortunes: one fortune each; tiny_shakespeare: one speech each, the blank-line-separated
    paragraphs), in TFDS's stored order (shuffled by key when written).
    """

    def _split_generators(self, dl_manager):
        pieces = super()._split_generators(dl_manager)
        return {n: self._documents(n, p) for n, p in pieces.items()}

    def _generate_examples(self, split: str, text: bytes):
        yield split, text   # the parent's cut; _documents splits it into records

    def _documents(self, split: str, generator):
        (_, text), = list(generator)
        sep = self.builder_config.boundary or b"\n\n"
        for i, doc in enumerate(split_documents(text, sep)):
            yield f"{split}-{i}", {"text": doc}
