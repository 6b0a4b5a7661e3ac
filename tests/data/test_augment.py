"""Augmentations: shapes kept, keyed determinism, per-example keys, inside jit, exact geometry."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.data.augment import batched, compose, normalize, random_crop, random_erasing, random_flip

KEY = jax.random.PRNGKey(0)
IMG = jnp.arange(8 * 8 * 3, dtype=jnp.float32).reshape(8, 8, 3) + 1.0     # all distinct, non-zero
BATCH = jnp.broadcast_to(IMG, (16, 8, 8, 3))

PIPE = jax.jit(batched(compose(partial(random_crop, padding=2), random_flip, partial(random_erasing, p=0.5))))


def test_composed_batch_augment_under_jit_keeps_shape_and_is_keyed():
    out = PIPE(KEY, BATCH)
    assert out.shape == BATCH.shape and out.dtype == BATCH.dtype
    assert np.array_equal(out, PIPE(KEY, BATCH))                               # same key, same result
    assert not np.array_equal(out, PIPE(jax.random.PRNGKey(1), BATCH))         # new key, new result
    distinct = {np.asarray(o).tobytes() for o in out}
    assert len(distinct) > 8                                                   # per-example keys


def test_batched_equals_vmap_of_single_example_with_split_keys():
    fn = jax.jit(partial(random_crop, padding=3))
    keys = jax.random.split(KEY, 16)
    want = jnp.stack([fn(k, x) for k, x in zip(keys, BATCH)])
    assert np.array_equal(jax.jit(batched(fn))(KEY, BATCH), want)


def test_random_crop_is_a_window_of_the_padded_image():
    padded = np.pad(np.asarray(IMG), ((2, 2), (2, 2), (0, 0)))
    windows = {padded[t:t + 8, l:l + 8].tobytes() for t in range(5) for l in range(5)}
    crops = jax.jit(batched(partial(random_crop, padding=2)))(KEY, BATCH)
    assert all(np.asarray(c).tobytes() in windows for c in crops)
    assert len({np.asarray(c).tobytes() for c in crops}) > 4
    assert np.array_equal(random_crop(KEY, IMG, padding=0), IMG)


def test_random_flip_mirrors_or_keeps():
    flip = jax.jit(random_flip, static_argnames="p")
    assert np.array_equal(flip(KEY, IMG, p=1.0), IMG[:, ::-1])
    assert np.array_equal(flip(KEY, IMG, p=0.0), IMG)
    out = jax.jit(batched(random_flip))(KEY, BATCH)
    flipped = np.array([np.array_equal(o, IMG[:, ::-1]) for o in out])
    kept = np.array([np.array_equal(o, IMG) for o in out])
    assert np.all(flipped ^ kept) and 0 < flipped.sum() < 16


def test_random_erasing_fills_one_rectangle():
    erase = jax.jit(random_erasing, static_argnames=("p", "value"))
    assert np.array_equal(erase(KEY, IMG, p=0.0), IMG)
    out = np.asarray(jax.jit(batched(partial(random_erasing, p=1.0, value=0.0)))(KEY, BATCH))
    for o in out:
        erased = np.all(o == 0, axis=-1)
        assert erased.any() and np.array_equal(o[~erased], np.asarray(IMG)[~erased])
        rows, cols = np.nonzero(erased)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert erased.sum() == h * w                                           # a solid rectangle
    noisy = erase(KEY, IMG, p=1.0, value="random")
    assert noisy.shape == IMG.shape and not np.array_equal(noisy, IMG)


def test_uint8_images_and_normalize():
    img = jnp.full((4, 4, 1), 255, jnp.uint8)
    out = jax.jit(batched(compose(partial(random_crop, padding=1), random_erasing)))(KEY, img[None].repeat(3, 0))
    assert out.dtype == jnp.uint8 and out.shape == (3, 4, 4, 1)
    x = jax.jit(normalize)(jnp.array([[0, 255]], jnp.uint8)[..., None], mean=[0.5], std=[0.5])
    assert x.dtype == jnp.float32 and np.allclose(x[..., 0], [[-1.0, 1.0]])


def test_batched_input_to_single_example_function_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected one image \(H, W, C\), got shape \(16, 8, 8, 3\)"):
        random_flip(KEY, BATCH)
