"""forecast.png: a series' recent history, the truth over the forecast span, forecasts and an interval band."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from deepcore.interpret.plots import _plt


def save_forecast(path: str, history, truth, forecasts: Dict[str, np.ndarray], *,
                  band: Optional[Tuple[np.ndarray, np.ndarray]] = None, band_label: str = "interval",
                  title: str = "", origins=None) -> str:
    """A PNG of ``history`` ``(T0,)`` then ``truth`` ``(T1,)`` (time steps ``T0 .. T0+T1-1``), each of
    ``forecasts`` ``{label: (T1,)}`` over the truth's span and ``band = (lower, upper)`` ``(T1,)`` shaded.
    ``origins``: steps (from 0 = the start of ``truth``) where new forecasts start, drawn as dotted lines."""
    history, truth = np.asarray(history, float), np.asarray(truth, float)
    for label, f in forecasts.items():
        if np.shape(f) != truth.shape:
            raise ValueError(f"save_forecast: forecast {label!r}: expected shape {truth.shape}, got {np.shape(f)}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    t0, t1 = np.arange(len(history)), len(history) + np.arange(len(truth))
    ax.plot(t0, history, color="0.45", lw=1.2, label="history")
    ax.plot(t1, truth, color="black", lw=1.6, label="truth")
    if band is not None:
        ax.fill_between(t1, band[0], band[1], color="tab:blue", alpha=0.2, label=band_label)
    for label, f in forecasts.items():
        ax.plot(t1, f, lw=1.3, label=label)
    for o in origins if origins is not None else ():
        ax.axvline(len(history) + o - 0.5, color="0.7", ls=":", lw=0.8)
    ax.set_xlabel("time step")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["save_forecast"]
