"""Smoke run of experiments/diffusion.py: results.json, samples.png, curves.png, the Fréchet distance at a
mark and at the end, and a --resume of the finished run that trains and samples nothing new."""
import math

import pytest
from _scripts import records, run, script

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@SHARED_DATA
def test_diffusion_smoke_run_and_resume(tmp_path):
    out = tmp_path / "run"
    results, _ = run("diffusion.py", out, "--eval-at-minutes", "0.0001")   # a mark after the first step
    m = results["metrics"]
    assert results["experiment"] == "diffusion" and results["steps"] == 4
    assert m["fid_samples"] == 256 and m["ddim_steps"] == 4
    for key in ("ema_fid_final", "fid_floor_test_vs_train", "val_loss_final"):
        assert math.isfinite(m[key]) and m[key] >= 0
    assert m["fid_floor_test_vs_train"] < m["ema_fid_final"]   # 4 steps of training are far from the data
    assert 0.5 < m["val_loss_final"] < 1.5                        # the noise's MSE starts near its variance 1
    for picture in ("samples.png", "curves.png"):
        assert (out / picture).stat().st_size > 1000
    marks = [r for r in records(out) if "mark" in r]
    assert [(r["mark"], r["step"]) for r in marks] == [(0.0001, 1), ("end", 4)]
    assert m["ema_fid_at_0.0001_min"] == marks[0]["val_fid"] and m["ema_fid_final"] == marks[1]["val_fid"]

    again, _ = run("diffusion.py", out, "--resume", "--eval-at-minutes", "0.0001")   # finished: nothing trained, the distance read back
    assert again["steps"] == 4 and again["metrics"]["ema_fid_final"] == m["ema_fid_final"]
    assert [r["mark"] for r in records(out) if "mark" in r] == [0.0001, "end"]


def test_diffusion_bad_flags_are_one_line(tmp_path):
    proc = script("diffusion.py", "--eval-at-minutes", "20", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("experiments/diffusion.py: error: --eval-at-minutes: expected values > 0 below "
                                   "--minutes 15, got 20.0")
