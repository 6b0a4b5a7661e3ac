"""Real time series that install offline: the CSV files bundled in the statsmodels wheel, read as plain files.

    s = load_series("sunspots")     # Series(name, values (T,) float64, period 11, frequency "yearly", ...)
    train, val, test = split_series(s.values, (0.7, 0.15, 0.15))

The CSVs ship inside the ``statsmodels`` package (``statsmodels/datasets/<dir>/<file>.csv``); the package is
located with ``importlib.util.find_spec`` and never imported (it pulls in scipy and pandas). A missing package is
:class:`DatasetUnavailable` with one line: ``pip install "deepcore[forecast]"``.

Not a TFDS builder: each series is a few KB of numbers already on disk, read in milliseconds; a builder would
only add a prepare step and a second copy. Missing values (59 weeks of co2) are filled by linear interpolation.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from typing import NamedTuple

import numpy as np

from deepcore.data.prepare import DatasetUnavailable

INSTALL = 'pip install "deepcore[forecast]"'


class Series(NamedTuple):
    """One univariate series: ``values`` ``(T,)`` float64 in time order, ``period`` its season length in steps
    (1: none), ``frequency`` (``"weekly"``...), ``start`` (the first time stamp as written in the file),
    ``description`` (what it measures, in which unit)."""

    name: str
    values: np.ndarray
    period: int
    frequency: str
    start: str
    description: str


# name -> (statsmodels dataset folder, file, value column, season length, frequency, description)
SERIES = {
    "co2": ("co2", "co2.csv", "co2", 52, "weekly", "Mauna Loa atmospheric CO2, ppm, 1958-2001"),
    "elec_equip": ("elec_equip", "elec_equip.csv", "STS.M.I7.W.TOVT.NS0016.4.000", 12, "monthly",
                   "euro-area electrical equipment orders, index 2010=100, 1995-2016"),
    "sunspots": ("sunspots", "sunspots.csv", "SUNACTIVITY", 11, "yearly", "yearly sunspot number, 1700-2008"),
    "nile": ("nile", "nile.csv", "volume", 1, "yearly", "Nile flow at Aswan, 10^8 m^3, 1871-1970"),
    "tbilrate": ("macrodata", "macrodata.csv", "tbilrate", 4, "quarterly",
                 "US 3-month treasury bill rate, percent, 1959-2009"),
    "infl": ("macrodata", "macrodata.csv", "infl", 4, "quarterly", "US inflation rate, percent, 1959-2009"),
    "unemp": ("macrodata", "macrodata.csv", "unemp", 4, "quarterly", "US unemployment rate, percent, 1959-2009"),
}


def datasets_dir() -> str:
    """The folder of statsmodels' bundled datasets, found without importing statsmodels."""
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"the series are the CSV files bundled with statsmodels, which is not installed: "
                                 f"{INSTALL}")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets")


def read_column(path: str, column: str):
    """``(first time stamp, values (T,) float64)`` of ``column`` in the CSV file at ``path``; empty cells NaN."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise DatasetUnavailable(f"{path}: expected a column {column!r}, got columns {header}")
    i = header.index(column)
    values = np.array([float(r[i]) if r[i].strip() else np.nan for r in rows[1:] if r], np.float64)
    return rows[1][0], values


def fill_gaps(values) -> np.ndarray:
    """``values`` ``(T,)`` with NaNs replaced by linear interpolation between their neighbours (ends: nearest)."""
    values = np.asarray(values, np.float64)
    bad = np.isnan(values)
    if bad.all():
        raise ValueError("fill_gaps: expected at least one finite value, got none")
    t = np.arange(len(values))
    out = values.copy()
    out[bad] = np.interp(t[bad], t[~bad], values[~bad])
    return out


def load_series(name: str) -> Series:
    """The series ``name`` (one of :data:`SERIES`), gaps interpolated; see the module doc."""
    if name not in SERIES:
        raise ValueError(f"load_series: expected one of {', '.join(SERIES)}, got {name!r}")
    folder, file, column, period, frequency, description = SERIES[name]
    path = os.path.join(datasets_dir(), folder, file)
    if not os.path.isfile(path):
        raise DatasetUnavailable(f"{path} is missing from the installed statsmodels: {INSTALL}")
    start, values = read_column(path, column)
    return Series(name, fill_gaps(values), period, frequency, start, description)


__all__ = ["Series", "SERIES", "load_series", "read_column", "fill_gaps", "datasets_dir", "INSTALL"]
