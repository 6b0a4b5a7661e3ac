"""Smoke run of experiments/gan.py: results.json, samples.png and curves.png appear."""
import json
import os
import subprocess
import sys

import pytest

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@SHARED_DATA
def test_gan_smoke_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "gan.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    m = results["metrics"]
    assert results["experiment"] == "gan" and results["steps"] == 4
    for key in ("fid_final", "ema_fid_final", "fid_floor_test_vs_train", "fid_at_init"):
        assert m[key] >= 0 and m[key] == m[key]
    assert m["fid_floor_test_vs_train"] < m["fid_at_init"]  # real test images are closer to the train set than noise
    for picture in ("samples.png", "curves.png"):
        assert (out / picture).stat().st_size > 1000


def test_gan_bad_flag_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "gan.py"), "--lr", "-1",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--lr must be > 0" in proc.stderr
