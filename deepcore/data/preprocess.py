"""The on-device half of an image pipeline: a layer that normalises uint8 images, augments them in training and
casts them to the compute dtype, so augmentation runs inside the compiled train step.

    augment = augmentation("crop+flip", image_size=28)          # batched fn(key, images), or None for "none"
    model = serial({"prep": Preprocess(mean, std, augment, jnp.float32), "net": net})
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import jax.numpy as jnp

from deepcore.core import Layer, layer, require_key, simple_init
from deepcore.data.augment import batched, compose, normalize, random_crop, random_flip

AUGMENTATIONS = ("crop", "flip")


def augmentation_parts(spec: str) -> Optional[list]:
    """``"crop+flip"`` -> ``["crop", "flip"]`` (``"none"`` -> ``[]``); None when ``spec`` is not ``"none"`` or
    ``+``-joined distinct names of :data:`AUGMENTATIONS`."""
    parts = [] if spec == "none" else spec.split("+")
    ok = all(p in AUGMENTATIONS for p in parts) and len(set(parts)) == len(parts)
    return parts if ok else None


def augmentation(spec: str, image_size: int) -> Optional[Callable]:
    """A batched ``fn(key, images (B, H, W, C)) -> images`` for ``spec`` (see :func:`augmentation_parts`):
    ``crop`` a random crop after zero padding (2 px for images up to 28 px, 4 px above), ``flip`` a left-right
    flip with probability 1/2; None for ``"none"``."""
    parts = augmentation_parts(spec)
    if parts is None:
        raise ValueError(f"augmentation: expected 'none' or '+'-joined distinct {' and '.join(AUGMENTATIONS)}, "
                         f"got {spec!r}")
    fns = {"crop": functools.partial(random_crop, padding=2 if image_size <= 28 else 4), "flip": random_flip}
    return batched(compose(*(fns[p] for p in parts))) if parts else None


def Preprocess(mean, std, augment: Optional[Callable] = None, dtype=jnp.float32) -> Layer:
    """A parameter-free layer: uint8 images ``(B, H, W, C)`` -> ``(images / 255 - mean) / std`` in ``dtype``,
    then ``augment(key, x)`` in train mode (it needs the step's key); ``mean``/``std`` per channel ``(C,)``."""

    def apply(params, state, x, *, key=None, train=False):
        x = normalize(x, mean, std)
        if train and augment is not None:
            x = augment(require_key(key, "augment"), x)
        return x.astype(dtype), state

    return layer("preprocess", simple_init(lambda key, spec: ({}, {}), apply), apply)


__all__ = ["AUGMENTATIONS", "augmentation", "augmentation_parts", "Preprocess"]
