"""Smoke run of experiments/anomaly.py: both scorers on one class, the report files, --resume, a bad flag."""
import json

import pytest
from _scripts import run, script

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@SHARED_DATA
def test_anomaly_smoke_run_and_resume(tmp_path):
    out = tmp_path / "run"
    results, _ = run("anomaly.py", out, "--classes", "3")
    m = results["metrics"]
    assert results["experiment"] == "anomaly" and results["transforms"] == 36 and m["classes"] == 1
    for s in ("cae", "geo"):
        assert 0.0 <= m[f"{s}_mean_auroc"] <= 1.0 and m[f"{s}_mean_auroc"] == m[f"{s}_auroc_class_3"]
    # after 4 steps on 256 dresses the transformation classifier already ranks dresses as more normal than chance
    assert m["geo_mean_auroc"] > 0.6
    table = (out / "table.md").read_text()
    assert "3 Dress" in table and "92.8" in table and f"{100 * m['geo_mean_auroc']:.1f}" in table
    for picture in ("auroc.png", "anomalies.png"):
        assert (out / picture).stat().st_size > 1000
    assert (out / "class_3" / "geo" / "checkpoints").is_dir()
    # --resume: the finished class is read back, not trained again
    before = json.loads((out / "class_3" / "auroc.json").read_text())
    again, proc = run("anomaly.py", out, "--classes", "3", "--resume")
    assert again["metrics"]["geo_auroc_class_3"] == before["geo_auroc"]
    assert "class 3" not in proc.stdout   # no new training line


def test_anomaly_bad_flag_is_one_line(tmp_path):
    proc = script("anomaly.py", "--classes", "0,12", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("experiments/anomaly.py: error: --classes: expected comma-separated distinct "
                                   "ints in [0, 9], got 0,12")
