"""Datasets by TFDS name, prepared offline from local files when there is no network.

    ds = load("fashion_mnist", "train", data_dir="~/tensorflow_datasets")
    ds.arrays   # {"image": uint8 (N, 28, 28, 1), "label": int32 (N,)}
    ds.info     # DatasetInfo(name, split, num_examples, num_classes, shape, class_names)
    text = load_text("fortunes", "train")           # or "tiny_shakespeare", or a path to a text file

Where the data come from, first hit wins (``load`` never waits on a network it cannot reach):

1. TFDS's own prepared copy under ``data_dir`` (array_record), read with ``tfds.data_source``.
2. deepcore's prepared copy (``deepcore_images/NAME``, ``deepcore_text/NAME``) under ``data_dir``.
3. Local raw files, prepared once into (2) without TensorFlow: ``manual_dir`` if given, else
   ``data_dir/NAME/``, ``data_dir/downloads/manual/NAME/``, then the Debian package's directory.
4. With ``download=True`` and a network found by a ~2 s probe: the upstream files through TFDS's
   download manager, prepared into (2). (If TensorFlow is installed TFDS's own builder is used.)
5. Otherwise :class:`DatasetUnavailable`, one line naming the package or directory that would help.

Splits: ``"train"``, ``"validation"``, ``"test"`` and ``"+"``-joined combinations. Datasets
without a validation split (the image ones) carve it deterministically from train:
``validation_fraction`` of train, chosen by a fixed permutation; ``"train"`` is then the rest.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import urllib.parse
from typing import Optional

import numpy as np

IMAGE_DATASETS = {
    # name: (Debian directory or None, what to put under DATA_DIR/NAME/, apt package or None)
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",
                      "the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                      "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)", "dataset-fashion-mnist"),
    "mnist": (None, "the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)", None),
    "cifar10": (None, "cifar-10-binary.tar.gz (or its extracted cifar-10-batches-bin/)", None),
}
TEXT_DATASETS = {
    "tiny_shakespeare": (None, "input.txt (karpathy/char-rnn tinyshakespeare)", None),
    "fortunes": ("/usr/share/games/fortunes", "fortune files (plain text, fortunes separated by '%' lines)",
                 "fortunes"),
}
UPSTREAM = {
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "tiny_shakespeare": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}
PROBE_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)


class DatasetUnavailable(RuntimeError):
    """The dataset is neither prepared, nor available from local files, nor downloadable now.

    ``str(e)`` is one line that says what to install or where to put which files.
    """


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


# --- network ----------------------------------------------------------------------------------------

def network_available(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (DNS included).

    Runs in a daemon thread so a resolver that hangs cannot hold the caller past ``timeout``.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


# --- locating and preparing -------------------------------------------------------------------------

def default_data_dir() -> str:
    """``$TFDS_DATA_DIR`` as it is *now* (TFDS reads it only at import), else ``~/tensorflow_datasets``."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def _local_dirs(name: str, data_dir: str, manual_dir: Optional[str]) -> list:
    known = {**IMAGE_DATASETS, **TEXT_DATASETS}[name]
    dirs = [manual_dir] if manual_dir else []
    dirs += [os.path.join(data_dir, name), os.path.join(data_dir, "downloads", "manual", name)]
    if known[0]:
        dirs.append(known[0])
    return [os.path.expanduser(d) for d in dirs]


def _has_sources(name: str, directory: str) -> bool:
    from deepcore.data import formats
    if not os.path.isdir(directory):
        return False
    if name in ("fashion_mnist", "mnist"):
        return bool(formats.find_idx(directory, "train") and formats.find_idx(directory, "test"))
    if name == "cifar10":
        return formats.has_cifar10(directory)
    if name == "fortunes":
        return bool(formats.fortune_files(directory))
    return os.path.isfile(os.path.join(directory, "input.txt"))


def _unavailable(name: str, data_dir: str, dirs: list, why: str) -> DatasetUnavailable:
    known = {**IMAGE_DATASETS, **TEXT_DATASETS}[name]
    fix = f"`apt-get install {known[2]}`, or put " if known[2] else "put "
    fix += f"{known[1]} in {os.path.join(data_dir, name)}/ (or pass manual_dir=)"
    return DatasetUnavailable(
        f"{name} is not available: no prepared copy in {data_dir}, no source files in "
        f"{', '.join(dirs)}, {why}. Fix: {fix}.")


def _tfds_source(tfds_name: str, split: str, data_dir: str):
    """``tfds.data_source(..., download=False)``, or None when that dataset is not prepared there."""
    import tensorflow_datasets as tfds
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)  # a probe: TFDS's warnings about a folder that is not there are noise here
    try:
        return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # not prepared / wrong file format / unknown split: try the next route
        log.debug("tfds.data_source(%s, %s) unavailable: %s", tfds_name, split, e)
        return None
    finally:
        absl_log.setLevel(level)


def _tensorflow_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorflow") is not None


def data_source(name: str, split: str, *, data_dir: Optional[str] = None, download: bool = True,
                manual_dir: Optional[str] = None):
    """A TFDS random-access data source for one stored split of ``name`` (preparing it if needed).

    ``split`` is a split as stored by TFDS (the image datasets store only ``train`` and ``test``).
    Raises :class:`DatasetUnavailable` in well under ``PROBE_TIMEOUT_S + 1`` seconds when the
    data cannot be had.
    """
    if name not in IMAGE_DATASETS and name not in TEXT_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted({**IMAGE_DATASETS, **TEXT_DATASETS})}")
    data_dir = os.path.expanduser(data_dir or default_data_dir())
    src = _tfds_source(name, split, data_dir)
    if src is not None:
        return src
    from deepcore.data import builders  # registers deepcore_images / deepcore_text with TFDS
    import tensorflow_datasets as tfds
    family = "deepcore_images" if name in IMAGE_DATASETS else "deepcore_text"
    full = f"{family}/{name}"
    src = _tfds_source(full, split, data_dir)
    if src is not None:
        return src
    cls = builders.DeepcoreImages if name in IMAGE_DATASETS else builders.DeepcoreText
    dirs = _local_dirs(name, data_dir, manual_dir)
    local = next((d for d in dirs if _has_sources(name, d)), None)
    if local is not None:
        t = time.perf_counter()
        builder = cls(config=name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=local))
        log.info("prepared %s from %s into %s in %.1f s", full, local, data_dir, time.perf_counter() - t)
    elif not download:
        raise _unavailable(name, data_dir, dirs, "and download=False")
    elif name not in UPSTREAM:
        raise _unavailable(name, data_dir, dirs, "and it has no download URL")
    elif not network_available(UPSTREAM[name]):
        host = urllib.parse.urlsplit(UPSTREAM[name]).hostname
        raise _unavailable(name, data_dir, dirs, f"and no network ({host} unreachable in {PROBE_TIMEOUT_S:g} s)")
    elif _tensorflow_installed():
        return tfds.data_source(name, split=split, data_dir=data_dir, download=True,
                                builder_kwargs={"file_format": "array_record"})
    else:
        builder = cls(config=name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare()
    return tfds.data_source(full, split=split, data_dir=data_dir, download=False)


# --- loading into memory ----------------------------------------------------------------------------

def read_all(source, chunk: int = 4096) -> list:
    """Every example of a data source, in order, as a list of dicts (batched reads where supported)."""
    n = len(source)
    out = []
    for lo in range(0, n, chunk):
        idx = list(range(lo, min(lo + chunk, n)))
        try:
            out.extend(source.__getitems__(idx))
        except (TypeError, AttributeError):   # mocked sources support item access only
            out.extend(source[i] for i in idx)
    return out


def _image_arrays(source) -> dict:
    examples = read_all(source)
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
         validation_seed: int = 0):
    """An image classification split held in memory (see the module docstring for where from).

    Returns a :class:`Dataset` with ``arrays = {"image": uint8 (N, H, W, C), "label": int32 (N,)}``.
    ``split``: ``"train"`` (train minus the carved validation), ``"validation"``, ``"test"``, or a
    ``"+"``-joined combination such as ``"train+validation"`` (the whole stored train split).
    A tuple of splits returns a tuple of :class:`Dataset`, reading each stored split once.
    """
    if not isinstance(split, str):
        return _load_many(name, tuple(split), data_dir, download, manual_dir, validation_fraction,
                          validation_seed)
    return _load_many(name, (split,), data_dir, download, manual_dir, validation_fraction, validation_seed)[0]


def _load_many(name, splits, data_dir, download, manual_dir, validation_fraction, validation_seed) -> tuple:
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
    stored, origin, out = {}, name, []
    for split in splits:
        pieces = []
        for part in split.split("+"):
            stored_split = "test" if part == "test" else "train"
            if stored_split not in stored:
                src = data_source(name, stored_split, data_dir=data_dir, download=download,
                                  manual_dir=manual_dir)
                origin = getattr(getattr(src, "dataset_info", None), "full_name", name)
                stored[stored_split] = _image_arrays(src)
            arrays = stored[stored_split]
            if part != "test":
                tr, va = carve_validation(len(arrays["label"]), validation_fraction, validation_seed)
                arrays = {k: v[tr if part == "train" else va] for k, v in arrays.items()}
            pieces.append(arrays)
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
