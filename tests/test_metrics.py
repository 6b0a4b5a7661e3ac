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


# ----------------------------------------------------------------------------- ranking and regression

def _auc_pairs(s, y):
    """ROC-AUC by counting every (positive, negative) pair: the definition, O(n^2)."""
    pos, neg = s[y > 0], s[y <= 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def _ap_thresholds(s, y):
    """Average precision by walking the distinct thresholds from the highest: sum (R_n - R_{n-1}) P_n."""
    ap, prev_recall = 0.0, 0.0
    for thr in sorted(set(s.tolist()), reverse=True):
        taken = s >= thr
        recall = np.sum(y[taken] > 0) / np.sum(y > 0)
        ap += (recall - prev_recall) * np.sum(y[taken] > 0) / np.sum(taken)
        prev_recall = recall
    return ap


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_and_average_precision_against_definitions(ties):
    from deepcore.metrics import average_precision, roc_auc
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 57)
    s = rng.normal(size=57) + y
    if ties:
        s = np.round(s * 2) / 2  # many tied scores
    np.testing.assert_allclose(roc_auc(s, y), _auc_pairs(s, y), rtol=1e-6)
    np.testing.assert_allclose(average_precision(s, y), _ap_thresholds(s, y), rtol=1e-6)
    keep = rng.random(57) < 0.6
    np.testing.assert_allclose(jax.jit(roc_auc)(s, y, keep), _auc_pairs(s[keep], y[keep]), rtol=1e-6)
    np.testing.assert_allclose(average_precision(s, y.astype(bool), keep), _ap_thresholds(s[keep], y[keep]),
                               rtol=1e-6)


def test_ranking_metrics_extremes_and_refusals():
    from deepcore.metrics import average_precision, roc_auc
    y = np.array([0, 0, 1, 1])
    assert float(roc_auc([0.1, 0.2, 0.3, 0.4], y)) == 1.0 and float(roc_auc([0.4, 0.3, 0.2, 0.1], y)) == 0.0
    assert float(roc_auc([1, 1, 1, 1], y)) == 0.5 and float(average_precision([0.1, 0.2, 0.3, 0.4], y)) == 1.0
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match=r"^roc_auc: expected scores and binary labels of the same non-empty "
                                         r"shape, got \(3,\) and \(4,\)$"):
        roc_auc([0.1, 0.2, 0.3], y)


def test_regression_metrics_against_numpy():
    from deepcore.metrics import mean_absolute_error, mean_squared_error, r2_score
    rng = np.random.default_rng(4)
    t = rng.normal(size=(40, 3))
    p = t + 0.3 * rng.normal(size=(40, 3))
    np.testing.assert_allclose(mean_squared_error(p, t), np.mean((p - t) ** 2), rtol=1e-5)
    np.testing.assert_allclose(mean_absolute_error(p, t), np.mean(np.abs(p - t)), rtol=1e-5)
    r2 = lambda p, t: np.mean(1 - ((t - p) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0))
    np.testing.assert_allclose(r2_score(p, t), r2(p, t), rtol=1e-5)
    np.testing.assert_allclose(r2_score(p[:, 0], t[:, 0]), r2(p[:, :1], t[:, :1]), rtol=1e-5)
    keep = rng.random(40) < 0.5
    np.testing.assert_allclose(jax.jit(r2_score)(p, t, keep), r2(p[keep], t[keep]), rtol=1e-5)
    np.testing.assert_allclose(mean_squared_error(p, t, keep), np.mean((p[keep] - t[keep]) ** 2), rtol=1e-5)
    assert float(r2_score(t.mean(0) + 0 * t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(r2_score(np.ones(5), np.ones(5))) == 1.0 and float(r2_score(np.zeros(5), np.ones(5))) == 0.0
