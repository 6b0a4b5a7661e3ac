"""Sliding windows over a numeric series against an explicit loop; they batch with make_batches."""
import numpy as np
import pytest

from deepcore.data import make_batches
from deepcore.data.windows import split_series, windows


@pytest.mark.parametrize("shape,stride,gap,cols", [((50,), 1, 0, None), ((50, 3), 3, 2, None), ((41, 4), 2, 0, [0, 2])])
def test_windows_equal_a_loop(shape, stride, gap, cols):
    s = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    w = windows(s, 7, 4, stride=stride, gap=gap, target_columns=cols)
    starts = range(0, len(s) - (7 + gap + 4) + 1, stride)
    want_x = np.stack([s[i:i + 7] for i in starts])
    want_y = np.stack([s[i + 7 + gap:i + 7 + gap + 4] for i in starts])
    if cols is not None:
        want_y = want_y[..., cols]
    np.testing.assert_array_equal(w["x"], want_x)
    np.testing.assert_array_equal(w["y"], want_y)
    assert len(w["x"]) == (len(s) - 11 - gap) // stride + 1


def test_windows_batch_and_refuse():
    s = np.sin(np.arange(200) / 5).astype(np.float32)[:, None]
    pipe = make_batches(windows(s, 16, 2), batch_size=8, seed=0, process_index=0, process_count=1)
    batch = next(iter(pipe.batches(0)))
    assert batch["x"].shape == (8, 16, 1) and batch["y"].shape == (8, 2, 1)
    with pytest.raises(ValueError, match=r"^windows: expected a series of at least input_len \+ gap \+ horizon "
                                         r"= 12 steps, got 10$"):
        windows(np.zeros(10), 10, 2)
    with pytest.raises(ValueError, match=r"^windows: stride: expected an integer >= 1, got 0$"):
        windows(np.zeros(30), 10, 2, stride=0)


def test_split_series_is_consecutive_in_time_order():
    s = np.arange(100)
    train, val, test = split_series(s, (0.7, 0.15, 0.15))
    np.testing.assert_array_equal(np.concatenate([train, val, test]), s)
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    with pytest.raises(ValueError, match="split_series: expected positive fractions"):
        split_series(s, (0.7, 0.5))
