"""Readers for the raw files datasets ship as: IDX (MNIST family), CIFAR binary batches, plain text.

Pure numpy and the standard library: nothing here needs TensorFlow or a network.
"""
from __future__ import annotations

import gzip
import io
import os
import tarfile
from typing import Optional, Sequence

import numpy as np

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its stored shape and dtype (uint8 here)."""
    with _open(path) as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_idx(directory: str, split: str) -> Optional[tuple]:
    """Paths (images, labels) of an IDX split in ``directory`` (``.gz`` or not), or None."""
    found = []
    for stem in IDX_FILES[split]:
        cands = [os.path.join(directory, stem + ext) for ext in (".gz", "")]
        cands += [os.path.join(directory, stem.replace("-idx", ".idx") + ext) for ext in (".gz", "")]
        hit = next((c for c in cands if os.path.isfile(c)), None)
        if hit is None:
            return None
        found.append(hit)
    return tuple(found)


def read_idx_split(directory: str, split: str) -> tuple:
    """``(images uint8 (N, H, W, 1), labels int64 (N,))`` of an MNIST-format split."""
    paths = find_idx(directory, split)
    if paths is None:
        raise FileNotFoundError(f"no IDX files {IDX_FILES[split]} in {directory}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if len(images) != len(labels):
        raise ValueError(f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split")
    return images[..., None], labels.astype(np.int64)


def has_cifar10(directory: str) -> bool:
    if os.path.isfile(os.path.join(directory, CIFAR10_ARCHIVE)):
        return True
    base = os.path.join(directory, "cifar-10-batches-bin")
    return all(os.path.isfile(os.path.join(base, f)) for fs in CIFAR10_FILES.values() for f in fs)


def _cifar_records(blob: bytes) -> tuple:
    rec = np.frombuffer(blob, np.uint8).reshape(-1, 1 + 3 * 32 * 32)
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW -> HWC
    return images, rec[:, 0].astype(np.int64)


def read_cifar10_split(directory: str, split: str) -> tuple:
    """``(images uint8 (N, 32, 32, 3), labels int64 (N,))`` from the CIFAR-10 binary version
    (``cifar-10-binary.tar.gz`` or its extracted ``cifar-10-batches-bin/``)."""
    names = CIFAR10_FILES[split]
    archive = os.path.join(directory, CIFAR10_ARCHIVE)
    blobs = []
    if os.path.isfile(archive):
        with tarfile.open(archive, "r:gz") as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers()}
            blobs = [tar.extractfile(members[n]).read() for n in names]
    else:
        for n in names:
            with open(os.path.join(directory, "cifar-10-batches-bin", n), "rb") as f:
                blobs.append(f.read())
    parts = [_cifar_records(b) for b in blobs]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --- text -------------------------------------------------------------------------------------------

def fortune_files(directory: str) -> list:
    """The fortune files of a ``fortunes`` directory, sorted by name, each file once.

    Skips the binary ``*.dat`` indexes and subdirectories (e.g. ``off/``). A ``NAME.u8`` is the
    UTF-8 version of ``NAME``: when it exists it is preferred, and since Debian ships it as a symlink
    to ``NAME``, files are de-duplicated by their resolved path.
    """
    names = sorted(os.listdir(directory))
    chosen, seen = [], set()
    for n in names:
        if n.endswith(".dat") or n.startswith("."):
            continue
        stem = n[:-3] if n.endswith(".u8") else n
        pick = stem + ".u8" if stem + ".u8" in names else stem
        path = os.path.join(directory, pick)
        real = os.path.realpath(path)
        if not os.path.isfile(real) or real in seen:
            continue
        seen.add(real)
        chosen.append(path)
    return chosen


def read_corpus(paths: Sequence[str]) -> bytes:
    """The files' bytes concatenated in the given order, nothing added or removed."""
    out = io.BytesIO()
    for p in paths:
        with open(p, "rb") as f:
            out.write(f.read())
    return out.getvalue()


def split_text(text, fractions=(0.9, 0.05, 0.05), boundary=None) -> tuple:
    """Contiguous train/validation/test pieces of ``text`` (str or bytes) whose concatenation is ``text``.

    Cut points sit at ``fractions`` of the length; with a ``boundary`` (e.g. ``b"\\n%\\n"`` between
    fortunes, ``b"\\n"`` between lines) each cut moves forward to just after the next boundary so
    no record is split between train and test. ``boundary=None`` cuts exactly like TFDS's
    ``tiny_shakespeare`` (90/5/5 by characters).
    """
    n = len(text)
    i = int(n * fractions[0])
    j = i + int((n - i) * fractions[1] / (fractions[1] + fractions[2]))

    def snap(k):
        if boundary is None or k >= n:
            return k
        hit = text.find(boundary, max(k - len(boundary), 0))
        return n if hit < 0 else hit + len(boundary)

    i = snap(i)
    j = max(snap(j), i)
    return text[:i], text[i:j], text[j:]
