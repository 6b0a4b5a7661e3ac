"""Smoke run of experiments/gan.py: results.json, samples.png and curves.png appear."""
import pytest
from _scripts import run, script

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@SHARED_DATA
def test_gan_smoke_run(tmp_path):
    out = tmp_path / "run"
    results, _ = run("gan.py", out)
    m = results["metrics"]
    assert results["experiment"] == "gan" and results["steps"] == 4
    for key in ("fid_final", "ema_fid_final", "fid_floor_test_vs_train", "fid_at_init"):
        assert m[key] >= 0 and m[key] == m[key]
    assert m["fid_floor_test_vs_train"] < m["fid_at_init"]  # real test images are closer to the train set than noise
    for picture in ("samples.png", "curves.png"):
        assert (out / picture).stat().st_size > 1000


def test_gan_bad_flag_is_one_line(tmp_path):
    proc = script("gan.py", "--lr", "-1", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "experiments/gan.py: error: --lr: expected a value > 0, got -1.0"
