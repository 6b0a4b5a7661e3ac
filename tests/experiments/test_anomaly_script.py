"""Smoke run of experiments/anomaly.py: both scorers (geo's Dirichlet and simple scores) on one class, the report
files, --resume of a finished class and of an older record, a bad flag."""
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
    for s in ("cae", "geo", "geo_simple"):
        assert 0.0 <= m[f"{s}_mean_auroc"] <= 1.0 and m[f"{s}_mean_auroc"] == m[f"{s}_auroc_class_3"]
    assert m["geo_auroc_class_3"] != m["geo_simple_auroc_class_3"]   # two different scores of the one model
    # after 4 steps on 256 dresses the transformation classifier already ranks dresses as more normal than chance
    assert m["geo_mean_auroc"] > 0.6
    table = (out / "table.md").read_text()
    assert "3 Dress" in table and "92.8" in table and f"{100 * m['geo_mean_auroc']:.1f}" in table
    assert "ours geo (K=36) | ours geo_simple (K=36)" in table
    record = json.loads((out / "class_3" / "auroc.json").read_text())
    assert record["dirichlet_fit_s"] > 0 and len(record["most_anomalous"]) == 8
    for picture in ("auroc.png", "anomalies.png"):
        assert (out / picture).stat().st_size > 1000
    assert (out / "class_3" / "geo" / "checkpoints").is_dir()
    # --resume: the finished class is read back, not trained again
    before = json.loads((out / "class_3" / "auroc.json").read_text())
    again, proc = run("anomaly.py", out, "--classes", "3", "--resume")
    assert again["metrics"]["geo_auroc_class_3"] == before["geo_auroc"]
    assert "class 3" not in proc.stdout   # no new training line
    # an older record without the simple score: scored again from the trained checkpoint, not trained again
    del before["geo_simple_auroc"]
    (out / "class_3" / "auroc.json").write_text(json.dumps(before))
    again, proc = run("anomaly.py", out, "--classes", "3", "--resume", "--scorers", "geo")
    assert "class 3 (Dress): geo AUROC" in proc.stdout and "geo_simple AUROC" in proc.stdout
    assert again["metrics"]["geo_auroc_class_3"] == pytest.approx(before["geo_auroc"], abs=1e-6)
    assert again["metrics"]["geo_simple_auroc_class_3"] == pytest.approx(m["geo_simple_auroc_class_3"], abs=1e-6)


def test_anomaly_bad_flag_is_one_line(tmp_path):
    proc = script("anomaly.py", "--classes", "0,12", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("experiments/anomaly.py: error: --classes: expected comma-separated distinct "
                                   "ints in [0, 9], got 0,12")
