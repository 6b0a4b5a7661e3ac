"""Image augmentations as pure JAX functions of a PRNG key: jit-able, vmapped over the batch.

Each augmentation works on ONE image ``(H, W, C)``: ``fn(key, image) -> image`` (same shape and
dtype). :func:`batched` turns it into ``fn(key, images (B, H, W, C))`` with one independent key per
example; :func:`compose` chains several with independent keys. Everything runs inside ``jax.jit``:

    augment = batched(compose(partial(random_crop, padding=4), random_flip, random_erasing))
    x = augment(key, normalize(batch["image"], mean, std))          # inside the jitted train step
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from deepcore.core import left_expand


def normalize(images, mean=None, std=None, scale: float = 255.0, dtype=jnp.float32):
    """``(images / scale - mean) / std`` in ``dtype``; ``mean``/``std`` broadcast over channels."""
    x = jnp.asarray(images).astype(dtype) / scale
    if mean is not None:
        x = x - left_expand(jnp.asarray(mean, dtype), x.ndim)
    if std is not None:
        x = x / left_expand(jnp.asarray(std, dtype), x.ndim)
    return x


def _check_image(image, what: str):
    if image.ndim != 3:
        raise ValueError(f"{what}: expected one image (H, W, C), got shape {tuple(image.shape)}; "
                         f"use batched({what}) for (B, H, W, C)")


def random_crop(key, image, padding: int = 4, fill=0):
    """Pad ``padding`` pixels on each side with ``fill``, then crop a random ``(H, W)`` window."""
    _check_image(image, "random_crop")
    h, w, _ = image.shape
    padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)), constant_values=fill)
    ky, kx = jax.random.split(key)
    top = jax.random.randint(ky, (), 0, 2 * padding + 1)
    left = jax.random.randint(kx, (), 0, 2 * padding + 1)
    return jax.lax.dynamic_slice(padded, (top, left, 0), image.shape)


def random_flip(key, image, p: float = 0.5):
    """Mirror left-right with probability ``p``."""
    _check_image(image, "random_flip")
    return jnp.where(jax.random.bernoulli(key, p), image[:, ::-1, :], image)


def random_erasing(key, image, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
    """With probability ``p`` fill a random rectangle with ``value`` (Zhong et al., 2017).

    The rectangle's area is a uniform ``scale`` fraction of the image and its aspect ratio
    log-uniform in ``ratio``; it is clipped to the image. ``value="random"`` fills with N(0, 1) noise.
    """
    _check_image(image, "random_erasing")
    h, w, c = image.shape
    k_apply, k_area, k_ratio, k_y, k_x, k_fill = jax.random.split(key, 6)
    area = jax.random.uniform(k_area, (), minval=scale[0], maxval=scale[1]) * h * w
    log_r = jax.random.uniform(k_ratio, (), minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1]))
    r = jnp.exp(log_r)
    eh = jnp.clip(jnp.round(jnp.sqrt(area * r)), 1, h).astype(jnp.int32)
    ew = jnp.clip(jnp.round(jnp.sqrt(area / r)), 1, w).astype(jnp.int32)
    top = jax.random.randint(k_y, (), 0, h - eh + 1)
    left = jax.random.randint(k_x, (), 0, w - ew + 1)
    rows = jnp.arange(h)[:, None, None]
    cols = jnp.arange(w)[None, :, None]
    inside = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
    inside = inside & jax.random.bernoulli(k_apply, p)
    if isinstance(value, str):
        if value != "random":
            raise ValueError(f"value must be a number or 'random', got {value!r}")
        fill = jax.random.normal(k_fill, image.shape).astype(image.dtype)
    else:
        fill = jnp.asarray(value, image.dtype)
    return jnp.where(inside, fill, image)


def compose(*fns: Callable) -> Callable:
    """``fn(key, image)`` applying ``fns`` in order, each with its own key split from ``key``."""
    def composed(key, image):
        for k, fn in zip(jax.random.split(key, len(fns)), fns):
            image = fn(k, image)
        return image
    return composed


def batched(fn: Callable) -> Callable:
    """``fn(key, image)`` -> ``f(key, images (B, ...))`` with an independent key per example."""
    def apply(key, images):
        return jax.vmap(fn)(jax.random.split(key, images.shape[0]), images)
    return apply
