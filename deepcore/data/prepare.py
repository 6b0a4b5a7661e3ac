"""Finding or preparing a dataset's TFDS copy on disk, offline first: :func:`data_source`.

Where the data come from, first hit wins (nothing here waits on a network it cannot reach):

1. TFDS's own prepared copy under ``data_dir`` (array_record), read with ``tfds.data_source``.
2. deepcore's prepared copy (``deepcore_images/NAME``, ``deepcore_text/NAME``, ``deepcore_documents/NAME``).
3. Local raw files, prepared once into (2) without TensorFlow: ``manual_dir`` if given, else
   ``data_dir/NAME/``, ``data_dir/downloads/manual/NAME/``, then the Debian package's directory.
4. With ``download=True`` and a network found by a ~2 s probe: the upstream files through TFDS's
   download manager, prepared into (2). (If TensorFlow is installed TFDS's own builder is used.)
5. Otherwise :class:`DatasetUnavailable`, one line naming the package or directory that would help.

Everything is written as array_record (``file_format="array_record"``): the random-access format that
``tfds.data_source`` and Grain read; TFRecord could only be streamed in order through tf.data.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
from typing import Optional

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


def _plain_progress(what: str) -> None:
    """Before a preparation: TFDS draws progress bars on stderr; where stderr is not a terminal (a log, a pipe,
    a script's caller reading its one error line) they are noise, so they are turned off for the process and
    one plain line goes to stdout instead."""
    if sys.stderr.isatty():
        return
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()
    print(f"deepcore.data: {what} (once; later runs read the prepared copy)", flush=True)


def _tensorflow_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorflow") is not None


def data_source(name: str, split: str, *, data_dir: Optional[str] = None, download: bool = True,
                manual_dir: Optional[str] = None, documents: bool = False):
    """A TFDS random-access data source for one stored split of ``name`` (preparing it if needed).

    ``split`` is a split as stored by TFDS (the image datasets store only ``train`` and ``test``).
    ``documents=True`` (text only): one record per document (``{"text": bytes}``, e.g. one fortune),
    the copy that :func:`deepcore.data.packed_text` streams, instead of one record per split.
    Raises :class:`DatasetUnavailable` in well under ``PROBE_TIMEOUT_S + 1`` seconds when the
    data cannot be had.
    """
    if name not in IMAGE_DATASETS and name not in TEXT_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted({**IMAGE_DATASETS, **TEXT_DATASETS})}")
    if documents and name not in TEXT_DATASETS:
        raise ValueError(f"documents=True needs a text dataset {sorted(TEXT_DATASETS)}, got {name!r}")
    data_dir = os.path.expanduser(data_dir or default_data_dir())
    src = None if documents else _tfds_source(name, split, data_dir)
    if src is not None:
        return src
    from deepcore.data import builders  # registers deepcore_images / _text / _documents with TFDS
    import tensorflow_datasets as tfds
    cls = (builders.DeepcoreImages if name in IMAGE_DATASETS else
           builders.DeepcoreDocuments if documents else builders.DeepcoreText)
    full = f"{cls.name}/{name}"
    src = _tfds_source(full, split, data_dir)
    if src is not None:
        return src
    dirs = _local_dirs(name, data_dir, manual_dir)
    local = next((d for d in dirs if _has_sources(name, d)), None)
    if local is not None:
        t = time.perf_counter()
        _plain_progress(f"preparing {full} from {local} into {data_dir}")
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
    elif _tensorflow_installed() and not documents:
        _plain_progress(f"downloading and preparing {name} into {data_dir}")
        return tfds.data_source(name, split=split, data_dir=data_dir, download=True,
                                builder_kwargs={"file_format": "array_record"})
    else:
        _plain_progress(f"downloading and preparing {full} into {data_dir}")
        builder = cls(config=name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare()
    return tfds.data_source(full, split=split, data_dir=data_dir, download=False)
