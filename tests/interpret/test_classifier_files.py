"""A trained classifier's run files: calibration.json, reliability.png and saliency.png, and the summary of its
evaluation records."""
import json

import jax.numpy as jnp
import numpy as np

from deepcore.interpret import classifier_files, classifier_report
from deepcore.train import eval_summary


def test_classifier_files_write_the_calibration_and_pictures_and_return_the_test_metrics(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=20).astype(np.float32)
    labels = rng.integers(0, 3, 20)
    images = rng.integers(0, 255, (20, 6, 6, 1)).astype(np.uint8)
    w = jnp.asarray(rng.normal(size=(36, 3)).astype(np.float32))
    out = classifier_files(str(tmp_path), probs, labels, ["a", "b", "c"],
                           logits_fn=lambda x: x.reshape(x.shape[0], -1) @ w, images=images)
    cal = classifier_report(probs, labels, num_classes=3)
    assert out == {"test_ece": cal["ece"], "test_mce": cal["mce"], "test_nll_nats": cal["nll_nats"],
                   "test_worst_class_accuracy": min(cal["per_class_accuracy"])}
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert saved["class_names"] == ["a", "b", "c"] and saved["ece"] == cal["ece"]
    for name in ("reliability.png", "saliency.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_summary_reads_the_last_evaluation_and_the_accuracy_reached_in_time():
    records = [{"step": 1, "split": "train", "examples_per_s": 10.0},
               {"step": 2, "split": "val", "val_accuracy": 0.5, "val_loss": 1.0, "val_wall_s": 200.0},
               {"step": 3, "split": "val", "val_accuracy": 0.7, "val_loss": 0.8, "val_wall_s": 500.0},
               {"step": 4, "split": "train", "examples_per_s": 12.0}]
    s = eval_summary(records)
    assert s == {"val_accuracy": 0.7, "val_loss_nats": 0.8, "val_accuracy_at_5min": 0.5,
                 "val_accuracy_at_10min": 0.7, "val_accuracy_at_15min": 0.7, "train_examples_per_s": 12.0}
    assert eval_summary([])["val_accuracy"] is None
