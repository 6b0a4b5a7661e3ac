"""Geometric transformations of square images as pixel gathers: a flip, a translation, quarter turns.

The self-labelled task of Golan & El-Yaniv (2018): ``K`` transformations of each normal image and a classifier
trained to tell which was applied. Every transformation here moves pixels without changing them, so it is a
gather over the flattened ``H*W`` pixels: one int table ``(K, H*W)`` serves all ``K`` inside a compiled step.

    ts = geometric_transforms(flip=True, shifts=(0,), rotations=4)   # 8 transforms (flip, dy, dx, quarter_turns)
    idx = gather_indices(ts, 28, 28)         # (K, 784) int32: output pixel p reads input pixel idx[k, p]
    y = transform_images(x, t, idx)          # x (B, H, W, C), t (B,) int in [0, K) -> (B, H, W, C)

Order inside one transform: the left-right flip, then the translation by ``(dy, dx)`` pixels (down, right; the
uncovered border is filled by reflection, as numpy's ``pad(mode="reflect")``), then ``quarter_turns``
counter-clockwise turns (as ``numpy.rot90``).
"""
from __future__ import annotations

import itertools
from typing import Sequence, Tuple

import jax.numpy as jnp
import numpy as np

Transform = Tuple[bool, int, int, int]   # (flip, dy, dx, quarter_turns)


def geometric_transforms(flip: bool = True, shifts: Sequence[int] = (0,), rotations: int = 4) -> Tuple[Transform, ...]:
    """Every combination of {no flip, flip} (or no flip only), ``dy`` and ``dx`` in ``shifts`` and
    ``0..rotations-1`` quarter turns; the identity first. ``shifts=(0, -8, 8), rotations=4`` with ``flip``
    is the paper's 72."""
    if rotations not in (1, 2, 4):
        raise ValueError(f"geometric_transforms: rotations: expected 1, 2 or 4, got {rotations}")
    if not shifts or shifts[0] != 0 or len(set(shifts)) != len(shifts):
        raise ValueError(f"geometric_transforms: shifts: expected distinct values starting with 0, got {tuple(shifts)}")
    step = 4 // rotations
    return tuple((bool(f), int(dy), int(dx), int(r)) for f, dy, dx, r in
                 itertools.product((False, True) if flip else (False,), shifts, shifts, range(0, 4, step)))


def _transform_numpy(img: np.ndarray, t: Transform) -> np.ndarray:
    flip, dy, dx, turns = t
    if flip:
        img = img[:, ::-1]
    h, w = img.shape[:2]
    if dy or dx:
        py, px = abs(dy), abs(dx)
        padded = np.pad(img, ((py, py), (px, px)) + ((0, 0),) * (img.ndim - 2), mode="reflect")
        img = padded[py - dy:py - dy + h, px - dx:px - dx + w]
    return np.rot90(img, turns, axes=(0, 1))


def gather_indices(transforms: Sequence[Transform], height: int, width: int) -> np.ndarray:
    """``(K, height*width)`` int32: row ``k`` lists, for each output pixel (row-major), the input pixel it reads
    under ``transforms[k]``. Needs a square image when a transform turns it; shifts must be ``< size``."""
    if any(t[3] % 2 for t in transforms) and height != width:
        raise ValueError(f"gather_indices: quarter turns need a square image, got {height}x{width}")
    if any(abs(t[1]) >= height or abs(t[2]) >= width for t in transforms):
        raise ValueError(f"gather_indices: shifts must be smaller than the image {height}x{width}, got "
                         f"{sorted({max(abs(t[1]), abs(t[2])) for t in transforms})[-1]}")
    where = np.arange(height * width, dtype=np.int32).reshape(height, width)
    return np.stack([_transform_numpy(where, t).reshape(-1) for t in transforms]).astype(np.int32)


def transform_images(x, t, indices):
    """Images ``x (B, H, W, C)`` under transforms ``t (B,)`` (ints into ``indices``, :func:`gather_indices`)."""
    b, h, w, c = x.shape
    if indices.shape[1] != h * w:
        raise ValueError(f"transform_images: indices are for {indices.shape[1]} pixels, images have {h}x{w}")
    flat = x.reshape(b, h * w, c)
    rows = jnp.asarray(indices)[t]
    return jnp.take_along_axis(flat, rows[..., None], axis=1).reshape(x.shape)


def all_transforms(x, indices):
    """Every image under every transform: ``x (B, H, W, C) -> (B, K, H, W, C)``."""
    b, h, w, c = x.shape
    k = indices.shape[0]
    flat = x.reshape(b, 1, h * w, c)
    out = jnp.take_along_axis(flat, jnp.asarray(indices)[None, :, :, None], axis=2)
    return out.reshape(b, k, h, w, c)


__all__ = ["geometric_transforms", "gather_indices", "transform_images", "all_transforms"]
