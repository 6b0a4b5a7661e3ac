"""Smoke runs of experiments/mlp.py and experiments/cnn.py: the documented outputs, resume, two devices."""
import json
import os

import pytest
from _scripts import FIELDS, records, run, script

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")
def check_results(res, name, steps, better_than=0.0):
    assert FIELDS <= set(res)
    assert res["experiment"] == name and res["dataset"] == "fashion_mnist" and res["steps"] == steps
    m = res["metrics"]
    for k in ("test_accuracy", "val_accuracy"):
        assert 0.0 <= m[k] <= 1.0
    assert m["test_accuracy"] > better_than
    assert res["train_examples_per_s"] > 0 and res["wall_s"] > 0


@SHARED_DATA
def test_mlp_two_devices_then_resume(tmp_path):
    out = tmp_path / "mlp"
    first, _ = run("mlp.py", out, "--steps", "2", "--devices", "2")
    check_results(first, "mlp", 2, better_than=0.2)    # chance is 0.1
    assert len(first["devices"]) == 2
    second, proc = run("mlp.py", out, "--steps", "4", "--devices", "2", "--resume")
    check_results(second, "mlp", 4, better_than=0.2)
    recs = records(out)
    evals = [r for r in recs if r.get("split") == "val"]
    assert [r["step"] for r in evals] == [1, 2, 4]   # smoke evals every steps//2: 1-2 kept, 4 added (continued)
    assert evals[2]["val_wall_s"] >= evals[1]["val_wall_s"]    # the clock continues across the restart
    assert "step 3/4" in proc.stdout or "step 4/4" in proc.stdout
    assert os.path.exists(out / "curves.png")
    other = script("mlp.py", "--smoke", "--out", str(out), "--steps", "6", "--devices", "2", "--resume",
                   "--widths", "64")    # another model than the checkpoint's: one line, the arrays named
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr[-2000:]
    last = other.stderr.strip().splitlines()[-1]
    assert last.startswith("experiments/mlp.py: error: --resume: the checkpoint at step 4") and "params/" in last


@SHARED_DATA
def test_cnn_smoke(tmp_path):
    out = tmp_path / "cnn"
    res, _ = run("cnn.py", out, "--widths", "8", "16", "--depths", "1", "1", "--batch-size", "32", "--tta", "flip")
    check_results(res, "cnn", 6)
    assert res["config"]["augment"] == "crop+flip" and res["config"]["tta"] == "flip"
    for picture in ("curves.png", "saliency.png", "reliability.png"):
        assert os.path.getsize(out / picture) > 1000
    cal = json.loads((out / "calibration.json").read_text())
    matrix = cal["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 256           # every smoke test example, once
    assert abs(cal["accuracy"] - res["metrics"]["test_accuracy"]) < 1e-6  # the same model on the same split
    assert 0.0 <= res["metrics"]["test_ece"] <= 1.0
    assert res["metrics"]["test_worst_class_accuracy"] == min(cal["per_class_accuracy"])
    assert any(r.get("split") == "val" and "val_wall_s" in r for r in records(out))


def test_bad_flag_is_one_line(tmp_path):
    proc = script("cnn.py", "--smoke", "--augment", "rot", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["experiments/cnn.py: error: --augment: expected 'none' or '+'-joined distinct 'crop' and 'flip', "
                     "got rot"] and "Traceback" not in proc.stderr
