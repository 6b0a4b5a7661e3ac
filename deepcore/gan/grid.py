"""``samples.png``: a batch of generated images as one PNG grid."""
from __future__ import annotations

import math

import numpy as np


def save_grid(images, path: str, nrow: int, *, scale: int = 3) -> str:
    """Images ``(N, H, W, 1)`` in ``[-1, 1]`` -> one PNG of ``nrow`` rows (2-pixel white gaps), each pixel
    drawn as ``scale x scale``; returns ``path``."""
    from PIL import Image

    x = ((np.asarray(images, np.float32)[..., 0] + 1) * 127.5).clip(0, 255).astype(np.uint8)
    n, h, w = x.shape
    ncol = math.ceil(n / nrow)
    grid = np.full((nrow * (h + 2) + 2, ncol * (w + 2) + 2), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + c * (w + 2):2 + c * (w + 2) + w] = x[i]
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(path)
    return path
