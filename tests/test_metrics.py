"""Metrics on hand-computed examples."""
import math

import jax
import numpy as np
import pytest

from deepcore import metrics

# argmax per row: 1, 0, 2, 2 ; labels 1, 2, 2, 0 -> hits: T, F, T, F
LOGITS = np.array([[0.1, 0.7, 0.2],
                   [0.5, 0.4, 0.1],
                   [0.0, 0.3, 0.9],
                   [0.2, 0.1, 0.6]], np.float32)
LABELS = np.array([1, 2, 2, 0])


def test_accuracy():
    assert float(metrics.accuracy(LOGITS, LABELS)) == pytest.approx(0.5)
    mask = np.array([True, False, True, True])
    assert float(metrics.accuracy(LOGITS, LABELS, mask)) == pytest.approx(2 / 3)
    assert float(metrics.accuracy(LOGITS, LABELS, np.zeros(4, bool))) == 0.0


def test_accuracy_on_sequences():
    logits = np.stack([LOGITS, LOGITS[::-1]])  # (2, 4, 3)
    labels = np.stack([LABELS, LABELS])  # second row argmax 2, 2, 0, 1 vs 1, 2, 2, 0 -> 1 hit
    mask = np.array([[True, True, True, True], [False, True, False, False]])
    assert float(metrics.accuracy(logits, labels)) == pytest.approx(3 / 8)
    assert float(metrics.accuracy(logits, labels, mask)) == pytest.approx(3 / 5)


def test_top_k_accuracy():
    # label rank (0 = largest): row0 0, row1 2, row2 0, row3 1
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, 1)) == pytest.approx(0.5)
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, 2)) == pytest.approx(0.75)
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, 3)) == pytest.approx(1.0)
    mask = np.array([False, True, True, True])
    assert float(metrics.top_k_accuracy(LOGITS, LABELS, 2, mask)) == pytest.approx(2 / 3)


def test_perplexity_and_bits_per_char():
    assert float(metrics.perplexity(math.log(50.0))) == pytest.approx(50.0, rel=1e-6)
    assert float(metrics.perplexity(0.0)) == pytest.approx(1.0)
    assert float(metrics.bits_per_char(math.log(2.0))) == pytest.approx(1.0, rel=1e-6)
    assert float(metrics.bits_per_char(math.log(256.0))) == pytest.approx(8.0, rel=1e-6)


def test_confusion_matrix():
    expected = np.array([[0, 0, 1],   # true 0 predicted 2
                         [0, 1, 0],   # true 1 predicted 1
                         [1, 0, 1]])  # true 2 predicted 0 and 2
    np.testing.assert_array_equal(metrics.confusion_matrix(LOGITS, LABELS, 3), expected)
    preds = LOGITS.argmax(-1)
    np.testing.assert_array_equal(metrics.confusion_matrix(preds, LABELS, 3), expected)
    mask = np.array([True, True, True, False])
    expected_masked = expected.copy()
    expected_masked[0, 2] = 0
    np.testing.assert_array_equal(metrics.confusion_matrix(LOGITS, LABELS, 3, mask), expected_masked)
    # a padding label -1 is not counted when masked out (unmasked it is refused: test_out_of_range_labels)
    np.testing.assert_array_equal(metrics.confusion_matrix(preds, np.array([1, 2, 2, -1]), 3, mask), expected_masked)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"logits \(\.\.\., K\)"):
        metrics.accuracy(LOGITS, LABELS[:3])


@pytest.mark.parametrize("name", ["accuracy", "top_k_accuracy", "confusion_matrix"])
def test_out_of_range_labels(name):
    fn = {"accuracy": metrics.accuracy, "top_k_accuracy": lambda lg, lb, mask=None: metrics.top_k_accuracy(
        lg, lb, 2, mask), "confusion_matrix": lambda lg, lb, mask=None: metrics.confusion_matrix(lg, lb, 3, mask)}[name]
    bad = np.array([1, 2, 3, 0])
    with pytest.raises(ValueError, match=rf"^{name}: expected integer labels in \[0, 3\), got 3 at index \(2,\)$"):
        fn(LOGITS, bad)
    keep = np.array([True, True, False, True])
    np.testing.assert_array_equal(fn(LOGITS, bad, mask=keep), fn(LOGITS, LABELS, mask=keep))  # masked: ignored
    if name != "confusion_matrix":                              # under jit: NaN, not a silently lower accuracy
        assert math.isnan(float(jax.jit(fn)(LOGITS, bad)))


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match=r"^accuracy: expected a non-empty batch"):
        metrics.accuracy(np.zeros((0, 3), np.float32), np.zeros((0,), np.int32))
