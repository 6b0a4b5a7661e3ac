"""deepcore.data.oneclass: the one-class split keeps one class for training and marks the normal test rows."""
import numpy as np
import pytest

from deepcore.data.oneclass import one_class_split


def test_split_keeps_the_normal_class_and_marks_the_test_rows():
    rng = np.random.default_rng(0)
    train = {"image": rng.normal(size=(50, 3)), "label": rng.integers(0, 4, 50)}
    test = {"image": rng.normal(size=(30, 3)), "label": rng.integers(0, 4, 30)}
    tr, te = one_class_split(train, test, 2)
    assert (tr["label"] == 2).all() and len(tr["label"]) == (train["label"] == 2).sum()
    np.testing.assert_array_equal(tr["image"], train["image"][train["label"] == 2])
    np.testing.assert_array_equal(te["normal"], test["label"] == 2)
    np.testing.assert_array_equal(te["image"], test["image"])
    assert "normal" not in test   # the input is not changed


def test_unknown_class_or_column_is_refused():
    arrays = {"image": np.zeros((4, 1)), "label": np.array([0, 1, 0, 1])}
    with pytest.raises(ValueError, match="expected one of \\[0, 1\\], got 7"):
        one_class_split(arrays, arrays, 7)
    with pytest.raises(KeyError, match="'y'"):
        one_class_split(arrays, arrays, 0, label="y")
