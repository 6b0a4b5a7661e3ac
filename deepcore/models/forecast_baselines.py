"""The classical forecasts a neural forecaster must beat: naive, seasonal naive, and a linear autoregression.

Each maps input windows ``x`` ``(N, L)`` (the last ``L`` values before each forecast origin, oldest first) to
forecasts ``(N, H)`` of the next ``H`` steps, as :func:`deepcore.data.windows` lays them out:

    naive(x, H)                      every step the window's last value
    seasonal_naive(x, H, period)     the value one season (``period`` steps) before each target step
    coef = fit_linear_ar(x, y)       least squares on the same lags, one regression per horizon step
    linear_ar(coef, x)               its forecasts: ``[x, 1] @ coef``
    baselines(train, x, H, period)   all of them (the AR ones fitted on ``train``), by name

``relative=True`` fits and forecasts the window relative to its last value (``x - x[:, -1:]`` -> ``y - x[:, -1:]``),
the parametrisation of :func:`deepcore.models.forecast.forecaster`: a linear model that follows a level or trend
beyond the training range, where the plain fit on levels (with its intercept) pulls back toward the training mean.
"""
from __future__ import annotations

import numpy as np


def _windows(x, what: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{what}: expected input windows (N, L), got shape {x.shape}")
    return x


def naive(x, horizon: int) -> np.ndarray:
    """``(N, horizon)``: the last value of each window ``x`` ``(N, L)``, repeated."""
    x = _windows(x, "naive")
    return np.repeat(x[:, -1:], horizon, axis=1)


def seasonal_naive(x, horizon: int, period: int) -> np.ndarray:
    """``(N, horizon)``: step ``h`` (0-based) forecast by ``x[:, L - period + (h mod period)]``, the value one
    season before it (seasons repeated for ``horizon > period``); needs ``L >= period``."""
    x = _windows(x, "seasonal_naive")
    if not 1 <= period <= x.shape[1]:
        raise ValueError(f"seasonal_naive: expected a period in [1, L = {x.shape[1]}], got {period}")
    idx = x.shape[1] - period + np.arange(horizon) % period
    return x[:, idx]


def _design(x) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def fit_linear_ar(x, y, *, relative: bool = False) -> np.ndarray:
    """``coef`` ``(L + 1, H)``: the least-squares fit of each target step ``y[:, h]`` on the lags ``x`` and an
    intercept (direct multi-step, ``numpy.linalg.lstsq``); ``x`` ``(N, L)``, ``y`` ``(N, H)``; ``relative``:
    both taken relative to each window's last value (module doc)."""
    x, y = _windows(x, "fit_linear_ar"), np.asarray(y, np.float64)
    if y.ndim != 2 or len(y) != len(x):
        raise ValueError(f"fit_linear_ar: expected targets ({len(x)}, H) for inputs {x.shape}, got {y.shape}")
    level = x[:, -1:] if relative else 0.0
    return np.linalg.lstsq(_design(x - level), y - level, rcond=None)[0]


def linear_ar(coef, x, *, relative: bool = False) -> np.ndarray:
    """``(N, H)``: the forecasts ``[x, 1] @ coef`` of :func:`fit_linear_ar`'s ``coef`` ``(L + 1, H)`` (with
    ``relative``: ``x[:, -1:] + [x - x[:, -1:], 1] @ coef``)."""
    x, coef = _windows(x, "linear_ar"), np.asarray(coef, np.float64)
    if coef.ndim != 2 or coef.shape[0] != x.shape[1] + 1:
        raise ValueError(f"linear_ar: expected coef ({x.shape[1] + 1}, H) for windows {x.shape}, got {coef.shape}")
    level = x[:, -1:] if relative else 0.0
    return level + _design(x - level) @ coef


def baselines(train, x, horizon: int, period: int) -> dict:
    """Every baseline's forecasts ``(N, horizon)`` for windows ``x`` ``(N, L)``, by name: ``naive``,
    ``seasonal_naive`` (left out when ``period > L``), ``linear_ar`` and ``linear_ar_relative`` (the least squares
    fitted on ``train = {"x": (M, L), "y": (M, horizon)}``)."""
    fit = lambda relative: fit_linear_ar(train["x"], train["y"], relative=relative)   # noqa: E731
    out = {"naive": naive(x, horizon),
           "seasonal_naive": seasonal_naive(x, horizon, period) if period <= np.shape(x)[1] else None,
           "linear_ar": linear_ar(fit(False), x), "linear_ar_relative": linear_ar(fit(True), x, relative=True)}
    return {k: v for k, v in out.items() if v is not None}


__all__ = ["naive", "seasonal_naive", "fit_linear_ar", "linear_ar", "baselines"]
