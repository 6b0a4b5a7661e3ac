"""Datasets by TFDS name held in memory: :func:`load` (images) and :func:`load_text` (corpora).

    ds = load("fashion_mnist", "train", data_dir="~/tensorflow_datasets")
    ds.arrays   # {"image": uint8 (N, 28, 28, 1), "label": int32 (N,)}
    ds.info     # DatasetInfo(name, split, num_examples, num_classes, shape, class_names)
    text = load_text("fortunes", "train")           # or "tiny_shakespeare", or a path to a text file

Where the data come from: :mod:`deepcore.data.prepare` (offline first, never waiting on a network).
Splits: ``"train"``, ``"validation"``, ``"test"`` and ``"+"``-joined combinations. Datasets
without a validation split (the image ones) carve it deterministically from train:
``validation_fraction`` of train, chosen by a fixed permutation; ``"train"`` is then the rest.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from deepcore.data.prepare import (IMAGE_DATASETS, PROBE_TIMEOUT_S, TEXT_DATASETS, UPSTREAM,  # noqa: F401
                                   DatasetUnavailable, data_source, default_data_dir, network_available)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    split: str
    num_examples: int
    num_classes: int
    shape: tuple            # one example's image shape (H, W, C)
    class_names: tuple
    origin: str             # where the data were read from (a TFDS dataset name and data_dir)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A split held in memory: ``arrays`` (a dict of numpy arrays sharing axis 0) and ``info``."""
    arrays: dict
    info: DatasetInfo

    def __len__(self) -> int:
        return self.info.num_examples


# --- loading into memory ----------------------------------------------------------------------------

def read_records(source, indices) -> list:
    """``source``'s records at ``indices`` in one batched read where the source supports it."""
    indices = [int(i) for i in indices]
    try:
        return list(source.__getitems__(indices))
    except (TypeError, AttributeError):   # lists, and TFDS's mocked sources, have item access only
        return [source[i] for i in indices]


def read_all(source, chunk: int = 4096, indices=None) -> list:
    """The examples of a data source at ``indices`` (default: every one), in order, as a list of dicts, read
    ``chunk`` at a time (batched reads where supported)."""
    indices = np.arange(len(source)) if indices is None else indices
    return [e for lo in range(0, len(indices), chunk) for e in read_records(source, indices[lo:lo + chunk])]


def _image_arrays(source, indices) -> dict:
    """``{"image": uint8 (N, H, W, C), "label": int32 (N,)}`` of the examples of ``source`` at ``indices`` (only
    those are read: a smoke run's few hundred examples cost no decode of the whole split)."""
    examples = read_all(source, indices=indices)
    images = np.stack([np.asarray(e["image"], np.uint8) for e in examples]) if examples else None
    labels = np.asarray([e["label"] for e in examples], np.int32)
    if images is not None and images.ndim == 3:
        images = images[..., None]
    return {"image": images, "label": labels}


def carve_validation(n: int, fraction: float, seed: int = 0) -> tuple:
    """``(train_indices, validation_indices)``: a fixed random ``fraction`` of ``range(n)`` held out.

    Deterministic in ``(n, fraction, seed)``; both index arrays sorted, disjoint, covering ``range(n)``.
    """
    n_val = int(round(n * fraction))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def load(name: str, split="train", *, data_dir: Optional[str] = None, download: bool = True,
         manual_dir: Optional[str] = None, validation_fraction: float = 0.1,
         validation_seed: int = 0, max_examples=None):
    """An image classification split held in memory (see the module docstring for where from).

    Returns a :class:`Dataset` with ``arrays = {"image": uint8 (N, H, W, C), "label": int32 (N,)}``.
    ``split``: ``"train"`` (train minus the carved validation), ``"validation"``, ``"test"``, or a
    ``"+"``-joined combination such as ``"train+validation"`` (the whole stored train split).
    A tuple of splits returns a tuple of :class:`Dataset`, reading each stored split once.
    ``max_examples``: each split's first examples only (an int, or one int or None per split): the same arrays
    as slicing the whole split, but only those examples are read and decoded.
    """
    many = not isinstance(split, str)
    splits = tuple(split) if many else (split,)
    caps = tuple(max_examples) if isinstance(max_examples, (tuple, list)) else (max_examples,) * len(splits)
    if len(caps) != len(splits):
        raise ValueError(f"max_examples: expected one entry per split ({len(splits)}), got {len(caps)}")
    out = _load_many(name, splits, data_dir, download, manual_dir, validation_fraction, validation_seed, caps)
    return out if many else out[0]


def _load_many(name, splits, data_dir, download, manual_dir, validation_fraction, validation_seed,
               caps) -> tuple:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; known: {sorted(IMAGE_DATASETS)} "
                         f"(text: use load_text)")
    data_dir = os.path.expanduser(data_dir or default_data_dir())
    for split in splits:
        bad = [p for p in split.split("+") if p not in ("train", "validation", "test")]
        if bad:
            raise ValueError(f"unknown split {bad[0]!r} in {split!r}; use train, validation, test or a+b")
    from deepcore.data.builders import CIFAR10_CLASSES, FASHION_CLASSES
    names = {"fashion_mnist": FASHION_CLASSES, "cifar10": CIFAR10_CLASSES,
             "mnist": tuple(str(i) for i in range(10))}[name]
    sources, origin, plans = {}, name, []
    for split, cap in zip(splits, caps):   # each split: (stored split, its example indices) per part, in order
        plan = []
        for part in split.split("+"):
            stored = "test" if part == "test" else "train"
            if stored not in sources:
                sources[stored] = data_source(name, stored, data_dir=data_dir, download=download,
                                              manual_dir=manual_dir)
                origin = getattr(getattr(sources[stored], "dataset_info", None), "full_name", name)
            n = len(sources[stored])
            idx = np.arange(n) if part == "test" else carve_validation(n, validation_fraction,
                                                                       validation_seed)[part == "validation"]
            if cap is not None:
                idx, cap = idx[:cap], cap - min(cap, len(idx))
            plan.append((stored, idx))
        plans.append(plan)
    read = {}   # each stored split read once: the examples some split takes (all of them unless capped)
    for stored, src in sources.items():
        need = np.unique(np.concatenate([idx for plan in plans for s, idx in plan if s == stored]))
        read[stored] = need, _image_arrays(src, need)
    out = []
    for split, plan in zip(splits, plans):
        pieces = [{k: v[np.searchsorted(read[s][0], idx)] for k, v in read[s][1].items()} for s, idx in plan]
        arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
        info = DatasetInfo(name=name, split=split, num_examples=len(arrays["label"]),
                           num_classes=len(names), shape=tuple(arrays["image"].shape[1:]),
                           class_names=names, origin=f"{origin} in {data_dir}")
        out.append(Dataset(arrays, info))
    return tuple(out)


def _as_bytes(text) -> bytes:
    if isinstance(text, np.ndarray):
        text = text.item()
    return text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")


def load_text(name: str, split: str = "train", *, data_dir: Optional[str] = None, download: bool = True,
              manual_dir: Optional[str] = None, as_bytes: bool = False):
    """A character corpus split as one ``str`` (or ``bytes`` with ``as_bytes=True``).

    ``name``: ``"tiny_shakespeare"``, ``"fortunes"``, or the path of any local text file (split
    90/5/5 at line boundaries; train + validation + test is the file byte for byte). Text is
    decoded as UTF-8 with ``surrogateescape``, so any bytes survive ``str`` -> ``bytes``.
    """
    parts = split.split("+")
    if any(p not in ("train", "validation", "test") for p in parts):
        raise ValueError(f"unknown split {split!r}; use train, validation, test or a+b")
    if name in TEXT_DATASETS:
        blobs = [_as_bytes(read_all(data_source(name, p, data_dir=data_dir, download=download,
                                                manual_dir=manual_dir))[0]["text"]) for p in parts]
    elif os.path.isfile(os.path.expanduser(name)):
        from deepcore.data import formats
        corpus = formats.read_corpus([os.path.expanduser(name)])
        pieces = dict(zip(("train", "validation", "test"), formats.split_text(corpus, boundary=b"\n")))
        blobs = [pieces[p] for p in parts]
    else:
        raise DatasetUnavailable(f"{name!r} is neither a known text dataset {sorted(TEXT_DATASETS)} "
                                 f"nor an existing file")
    data = b"".join(blobs)
    return data if as_bytes else data.decode("utf-8", "surrogateescape")
