"""Calibration: ECE against a hand-computed example, bins, per-class accuracy, the reliability diagram."""
import numpy as np
import pytest

from deepcore.interpret import (calibration_bins, classifier_report, expected_calibration_error,
                                max_calibration_error, per_class_accuracy, reliability_diagram)

# 5 examples, 2 classes, 4 bins (0, .25] (.25, .5] (.5, .75] (.75, 1]
PROBS = np.array([[0.9, 0.1],    # conf .9  bin 3, predicts 0, label 0: hit
                  [0.2, 0.8],    # conf .8  bin 3, predicts 1, label 0: miss
                  [0.6, 0.4],    # conf .6  bin 2, predicts 0, label 0: hit
                  [0.3, 0.7],    # conf .7  bin 2, predicts 1, label 1: hit
                  [0.55, 0.45]], np.float32)  # conf .55 bin 2, predicts 0, label 1: miss
LABELS = np.array([0, 0, 0, 1, 1])


def test_ece_matches_a_hand_computed_example():
    # bin 3: 2 examples, accuracy 1/2, confidence .85 -> |.5 - .85| = .35
    # bin 2: 3 examples, accuracy 2/3, confidence .6167 -> |.6667 - .6167| = .05
    expected = 2 / 5 * 0.35 + 3 / 5 * abs(2 / 3 - (0.6 + 0.7 + 0.55) / 3)
    assert float(expected_calibration_error(PROBS, LABELS, num_bins=4)) == pytest.approx(expected, abs=1e-6)
    assert float(max_calibration_error(PROBS, LABELS, num_bins=4)) == pytest.approx(0.35, abs=1e-6)
    bins = calibration_bins(PROBS, LABELS, num_bins=4)
    np.testing.assert_array_equal(bins["count"], [0, 0, 3, 2])
    np.testing.assert_allclose(bins["accuracy"], [0, 0, 2 / 3, 0.5], atol=1e-6)


def test_perfect_confident_predictions_have_zero_ece_and_bin_edges_are_right_closed():
    probs = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    assert float(expected_calibration_error(probs, np.array([0, 1, 2, 1]))) == pytest.approx(0.0)
    # confidence exactly .5 goes to the bin (.25, .5], not (.5, .75]
    bins = calibration_bins(np.array([[0.5, 0.5]], np.float32), np.array([0]), num_bins=4)
    np.testing.assert_array_equal(bins["count"], [0, 1, 0, 0])


def test_per_class_accuracy_report_and_diagram(tmp_path):
    acc = np.asarray(per_class_accuracy(PROBS, LABELS, 3))
    np.testing.assert_allclose(acc[:2], [2 / 3, 1 / 2])
    assert np.isnan(acc[2])
    rep = classifier_report(PROBS, LABELS, 2, num_bins=4)
    assert rep["accuracy"] == pytest.approx(0.6) and rep["confusion_matrix"] == [[2, 1], [1, 1]]
    assert rep["nll_nats"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.6, 0.7, 0.45])), rel=1e-5)
    path = reliability_diagram(str(tmp_path / "rel.png"), PROBS, LABELS, num_bins=4,
                               others={"other": np.full_like(PROBS, 0.5)})
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="expected probs"):
        expected_calibration_error(PROBS, LABELS[:3])


def test_train_test_curves_writes_a_png(tmp_path):
    from deepcore.interpret import train_test_curves

    curve = [{"step": s, "train_accuracy": 0.5 + 0.1 * i, "test_accuracy": 0.5 + 0.05 * i} for i, s in enumerate((2, 4))]
    path = train_test_curves(str(tmp_path / "sub" / "gap.png"), {"baseline": curve, "dropout": curve[:1]},
                             gaps={"baseline": 0.05, "dropout": 0.0})
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError):       # a run without its measured gap is an error, not a silent default
        train_test_curves(str(tmp_path / "x.png"), {"baseline": curve}, gaps={"other": 0.1})
