"""Smoke runs of experiments/forecast.py: the test table, results.json, forecast.png, --quantiles and --resume."""
import json

import pytest
from _scripts import records, run, script

pytest.importorskip("statsmodels", reason='the series ship with statsmodels: pip install "deepcore[forecast]"')


def test_forecast_smoke_run_scores_every_baseline(tmp_path):
    out = tmp_path / "run"
    results, proc = run("forecast.py", out, "--dataset", "sunspots", "--quantiles", "0.1,0.5,0.9")
    m = results["metrics"]
    assert results["experiment"] == "forecast" and results["steps"] == 20 and m["horizon"] == 11
    for name in ("gru", "naive", "seasonal_naive", "linear_ar", "linear_ar_relative"):
        assert 0 < m[f"test_mase_{name}"] < 10 and 0 < m[f"test_smape_{name}"] < 200, name
    assert m["test_mase"] == m["test_mase_gru"] and isinstance(m["beats_all_baselines"], bool)
    assert 0 <= m["test_interval_coverage"] <= 1 and m["interval_nominal"] == pytest.approx(0.8)
    assert "linear_ar_relative" in proc.stdout and "interval coverage" in proc.stdout
    assert any(r.get("split") == "val" and r["val_mase"] > 0 for r in records(out))
    assert (out / "forecast.png").stat().st_size > 5000 and (out / "curves.png").exists()


def test_forecast_resume_continues_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    run("forecast.py", out, "--dataset", "nile", "--model", "tcn", "--steps", "6", "--eval-every", "3")
    results, _ = run("forecast.py", out, "--dataset", "nile", "--model", "tcn", "--steps", "12", "--eval-every",
                     "3", "--resume")
    assert results["steps"] == 12 and results["metrics"]["test_mase"] > 0
    assert [r["step"] for r in records(out) if r.get("split") == "val"] == [3, 6, 9, 12]
    with open(out / "results.json") as f:
        assert json.load(f)["config"]["resume"] is True


def test_forecast_bad_flags_are_one_line(tmp_path):
    proc = script("forecast.py", "--quantiles", "0.1,0.9", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("experiments/forecast.py: error: --quantiles: expected distinct levels in (0, 1) "
                                   "including 0.5, got 0.1 0.9")
    proc = script("forecast.py", "--dataset", "airline", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "--dataset: expected one of co2, elec_equip, infl" in proc.stderr
