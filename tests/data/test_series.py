"""The series bundled with statsmodels, read as plain CSV files, and split windows over a series."""
import subprocess
import sys

import numpy as np
import pytest

from deepcore.data import DatasetUnavailable, SERIES, load_series, split_windows, windows
from deepcore.data import series as series_mod

pytest.importorskip("statsmodels", reason='the series ship with statsmodels: pip install "deepcore[forecast]"')


def test_every_series_loads_finite_and_known_values():
    for name in SERIES:
        s = load_series(name)
        assert s.values.ndim == 1 and len(s.values) > 50 and np.isfinite(s.values).all(), name
        assert s.period >= 1 and s.frequency in ("weekly", "monthly", "quarterly", "yearly")
    co2, sun = load_series("co2"), load_series("sunspots")
    assert len(co2.values) == 2284 and co2.start == "19580329" and co2.values[0] == 316.1
    assert len(sun.values) == 309 and sun.start == "1700" and (sun.values[:3] == [5, 11, 16]).all()
    assert load_series("tbilrate").values[0] == 2.82 and load_series("elec_equip").values[0] == 66.19


def test_co2_gaps_are_interpolated_between_neighbours(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,v\n1,1.0\n2,\n3,\n4,4.0\n5,\n")
    start, raw = series_mod.read_column(str(path), "v")
    assert start == "1" and np.isnan(raw).sum() == 3
    np.testing.assert_array_equal(series_mod.fill_gaps(raw), [1, 2, 3, 4, 4])


def test_unknown_name_and_column_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="load_series: expected one of co2, "):
        load_series("nope")
    path = tmp_path / "s.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetUnavailable, match="expected a column 'v'"):
        series_mod.read_column(str(path), "v")


def test_loading_does_not_import_statsmodels():
    code = "import sys; from deepcore.data import load_series; load_series('co2'); print('statsmodels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_missing_statsmodels_says_the_pip_command(monkeypatch):
    monkeypatch.setattr(series_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetUnavailable, match=r'pip install "deepcore\[forecast\]"'):
        load_series("co2")


def test_split_windows_targets_stay_in_their_piece_inputs_reach_back():
    s = np.arange(100.0)
    train, val, test = split_windows(s, (0.7, 0.15, 0.15), input_len=10, horizon=3)
    # pieces [0, 70), [70, 85), [85, 100)
    assert train["y"].min() == 10 and train["y"].max() == 69 and len(train["x"]) == 70 - 10 - 3 + 1
    assert val["x"][0, 0] == 60 and val["y"][0, 0] == 70 and val["y"].max() == 84 and len(val["y"]) == 15 - 3 + 1
    assert test["y"][0, 0] == 85 and test["y"][-1, -1] == 99 and len(test["y"]) == 13
    np.testing.assert_array_equal(test["x"], windows(s[75:], 10, 3)["x"])


def test_split_windows_refuses_a_piece_without_windows():
    with pytest.raises(ValueError, match="split_windows: piece 2"):
        split_windows(np.arange(40.0), (0.8, 0.15, 0.05), input_len=5, horizon=3)
