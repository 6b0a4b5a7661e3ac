"""experiments/overfitting.py --smoke: results.json with a generalisation gap per configuration, the pictures."""
import json

import pytest
from _scripts import records, script

# scripts that prepare Fashion-MNIST in the default data dir run on one xdist worker, one at a time
SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


def run(*flags, out):
    return script("overfitting.py", "--out", str(out), *flags, timeout=600)


@SHARED_DATA
@pytest.mark.realdata
def test_smoke_run_writes_gaps_and_pictures(tmp_path):
    # all regularisers combined (every code path of the configurations) plus a 2-member ensemble
    p = run("--smoke", "--configs", "all_combined", "--members", "2", out=tmp_path)
    if p.returncode == 2 and "dataset" in p.stderr.lower() and "unavailable" in p.stderr.lower():
        pytest.skip(p.stderr.strip())
    assert p.returncode == 0, p.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        res = json.load(f)
    assert res["experiment"] == "overfitting" and res["config"]["smoke"] is True
    m = res["metrics"]
    train, test, gap = m["all_combined_train_accuracy"], m["all_combined_test_accuracy"], m["all_combined_gap"]
    assert 0.0 <= train <= 1.0 and 0.0 <= test <= 1.0 and gap == pytest.approx(train - test)
    conf = res["configurations"]["all_combined"]
    assert conf["steps"] >= 1 and conf["stop_reason"] in ("done", "early_stop") and "baseline_gap" not in m
    layers = conf["layers"]  # per-layer statistics of the trained model, read through activation capture
    assert 0.0 <= layers["dead_relu/relu_0"] <= 1.0 and layers["act_norm/conv_0"] > 0 and layers["grad_norm/dense_1"] > 0
    assert 0.0 <= m["ensemble_test_ece"] <= 1.0 and len(res["ensemble"]["members"]) == 2
    for picture in ("curves.png", "reliability.png"):
        with open(tmp_path / picture, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    evals = [r for r in records(tmp_path / "all_combined") if r.get("split") == "val"]  # fit's log, per evaluation
    assert evals and all("val_train_accuracy" in r and "val_test_accuracy" in r for r in evals)


def test_bad_flag_is_one_line(tmp_path):
    p = run("--smoke", "--configs", "baseline,bogus", out=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith(
        "experiments/overfitting.py: error: --configs: expected a comma-separated subset of baseline,")
