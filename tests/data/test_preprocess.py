"""The image input layer: normalisation against numpy, augmentation only in train mode, the spec parser."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.data.preprocess import Preprocess, augmentation, augmentation_parts


def test_spec_parser():
    assert augmentation_parts("none") == [] and augmentation_parts("crop+flip") == ["crop", "flip"]
    assert augmentation_parts("flip+flip") is None and augmentation_parts("rot") is None
    assert augmentation("none", 28) is None
    with pytest.raises(ValueError, match=r"got 'crop\+rot'"):
        augmentation("crop+rot", 28)


def test_normalises_in_eval_and_augments_only_in_train():
    images = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    mean, std = np.array([0.1, 0.2, 0.3], np.float32), np.array([0.5, 0.25, 2.0], np.float32)
    prep = Preprocess(mean, std, augmentation("flip", 8), jnp.bfloat16)
    params, state = prep.init(jax.random.key(0), jax.ShapeDtypeStruct(images.shape, jnp.uint8))[1:]
    assert params == {} and state == {}
    x, _ = prep.apply(params, state, images)
    assert x.dtype == jnp.bfloat16
    want = (images.astype(np.float64) / 255 - mean) / std
    np.testing.assert_allclose(np.asarray(x, np.float32), want, rtol=1e-2, atol=1e-2)
    flipped = Preprocess(mean, std, augmentation("flip", 8)).apply({}, {}, images, key=jax.random.key(3), train=True)[0]
    plain = np.asarray(Preprocess(mean, std).apply({}, {}, images)[0])
    same = [np.allclose(got, img) for got, img in zip(np.asarray(flipped), plain)]
    mirrored = [np.allclose(got, img[:, ::-1]) for got, img in zip(np.asarray(flipped), plain)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)   # each itself or its mirror
    with pytest.raises(Exception, match="augment"):
        Preprocess(mean, std, augmentation("flip", 8)).apply({}, {}, images, train=True)   # no key: one clear error
