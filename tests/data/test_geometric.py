"""deepcore.data.geometric: each transform against an explicit per-pixel numpy computation."""
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.data.geometric import all_transforms, gather_indices, geometric_transforms, transform_images


def _reflect(i, n):   # numpy pad(mode="reflect"): the edge pixel is not repeated
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


def _by_hand(img, flip, dy, dx, turns):
    h, w = img.shape[:2]
    out = img[:, ::-1] if flip else img
    out = np.array([[out[_reflect(i - dy, h), _reflect(j - dx, w)] for j in range(w)] for i in range(h)])
    for _ in range(turns):   # one counter-clockwise quarter turn: out[i, j] = in[j, W-1-i]
        n = out.shape[0]
        out = np.array([[out[j, n - 1 - i] for j in range(n)] for i in range(n)])
    return out


def test_the_paper_set_has_72_distinct_transforms_identity_first():
    ts = geometric_transforms(flip=True, shifts=(0, -8, 8), rotations=4)
    assert len(ts) == 72 and len(set(ts)) == 72 and ts[0] == (False, 0, 0, 0)
    assert len(geometric_transforms()) == 8 and len(geometric_transforms(flip=False, rotations=2)) == 2


@pytest.mark.parametrize("t", [(False, 0, 0, 1), (True, 0, 0, 0), (False, 2, -3, 0), (True, -1, 2, 3),
                               (True, 3, 3, 2)])
def test_each_transform_matches_the_per_pixel_definition(t):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (2, 7, 7, 3)).astype(np.uint8)
    idx = gather_indices([(False, 0, 0, 0), t], 7, 7)
    got = np.asarray(transform_images(jnp.asarray(x), jnp.array([1, 1]), idx))
    for b in range(2):
        np.testing.assert_array_equal(got[b], _by_hand(x[b], *t))
    np.testing.assert_array_equal(np.asarray(transform_images(x, jnp.array([0, 0]), idx)), x)


def test_quarter_turns_and_flip_agree_with_numpy():
    x = np.arange(2 * 5 * 5).reshape(2, 5, 5, 1).astype(np.float32)
    idx = gather_indices(geometric_transforms(), 5, 5)   # (flip, 0, 0, r): flip-major, then r = 0..3
    every = np.asarray(all_transforms(jnp.asarray(x), idx))
    assert every.shape == (2, 8, 5, 5, 1)
    for k, (flip, _, _, r) in enumerate(geometric_transforms()):
        want = np.rot90(x[:, :, ::-1] if flip else x, r, axes=(1, 2))
        np.testing.assert_array_equal(every[:, k], want)
        np.testing.assert_array_equal(np.asarray(transform_images(x, jnp.array([k, k]), idx)), want)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="square"):
        gather_indices(geometric_transforms(), 4, 6)
    with pytest.raises(ValueError, match="shifts"):
        gather_indices(geometric_transforms(shifts=(0, 5)), 4, 4)
    with pytest.raises(ValueError, match="rotations"):
        geometric_transforms(rotations=3)
