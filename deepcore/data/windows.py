"""Sliding windows over numeric series for forecasting: ``(inputs, targets)`` pairs ready for ``make_batches``.

    train, val, test = split_series(series, (0.7, 0.15, 0.15))          # in time order, no shuffling
    train_w, val_w, test_w = split_windows(series, (0.7, 0.15, 0.15), input_len=48, horizon=12)
    pipe = make_batches(windows(train, input_len=48, horizon=12), batch_size=64, seed=0)
    # batch["x"]: (64, 48, D) past values, batch["y"]: (64, 12, D) the next 12 steps

Windows are views of the series (``numpy.lib.stride_tricks.sliding_window_view``): no copy until a batch
gathers its rows.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def windows(series, input_len: int, horizon: int = 1, *, stride: int = 1, gap: int = 0,
            target_columns: Optional[Sequence[int]] = None, x: str = "x", y: str = "y") -> dict:
    """``{x: (N, input_len[, D]), y: (N, horizon[, Dt])}``: each input window and the ``horizon`` steps after it.

    ``series`` ``(T,)`` or ``(T, D)`` (time first). Window ``i`` reads rows ``[i*stride, i*stride + input_len)``
    and its target rows ``[e + gap, e + gap + horizon)`` with ``e = i*stride + input_len`` (``gap`` skips
    steps between them). ``target_columns`` picks the forecast columns of a ``(T, D)`` series.
    ``N = (T - input_len - gap - horizon) // stride + 1``; too short a series raises ``ValueError``.
    """
    series = np.asarray(series)
    if series.ndim not in (1, 2):
        raise ValueError(f"windows: expected a series (T,) or (T, D), got shape {series.shape}")
    for name, v, least in (("input_len", input_len, 1), ("horizon", horizon, 1), ("stride", stride, 1),
                           ("gap", gap, 0)):
        if int(v) != v or v < least:
            raise ValueError(f"windows: {name}: expected an integer >= {least}, got {v!r}")
    span = input_len + gap + horizon
    if len(series) < span:
        raise ValueError(f"windows: expected a series of at least input_len + gap + horizon = {span} steps, "
                         f"got {len(series)}")
    n = (len(series) - span) // stride + 1
    view = np.lib.stride_tricks.sliding_window_view(series, span, axis=0)[::stride][:n]  # (N, [D,] span)
    view = np.moveaxis(view, -1, 1)                                                         # (N, span[, D])
    target = view[:, input_len + gap:]
    if target_columns is not None:
        if series.ndim != 2:
            raise ValueError(f"windows: target_columns needs a series (T, D), got shape {series.shape}")
        target = target[..., list(target_columns)]
    return {x: view[:, :input_len], y: target}


def split_series(series, fractions: Sequence[float]) -> list:
    """Consecutive pieces of ``series`` (time first) with the given fractions of its length, in time order.

    ``split_series(s, (0.7, 0.15, 0.15))``: train, validation, test without look-ahead (no shuffling);
    fractions must be positive and sum to at most 1 (a smaller sum drops the tail).
    """
    series = np.asarray(series)
    fr = np.asarray(fractions, float)
    if fr.ndim != 1 or len(fr) == 0 or np.any(fr <= 0) or fr.sum() > 1 + 1e-9:
        raise ValueError(f"split_series: expected positive fractions summing to at most 1, got {tuple(fractions)}")
    ends = np.floor(np.cumsum(fr) * len(series) + 1e-9).astype(int)
    starts = np.concatenate([[0], ends[:-1]])
    return [series[a:b] for a, b in zip(starts, ends)]


def split_windows(series, fractions: Sequence[float], input_len: int, horizon: int = 1) -> list:
    """``windows`` of each :func:`split_series` piece: every window whose targets lie inside that piece, its
    inputs reaching back into the pieces before (so the first validation forecast starts right after the
    training data). Returns one ``{"x": (N, input_len), "y": (N, horizon)}`` per fraction; a piece with no
    full window (the first one shorter than ``input_len + horizon``, a later one than ``horizon``) raises
    ``ValueError``."""
    series = np.asarray(series)
    out, start = [], 0
    for i, piece in enumerate(split_series(series, fractions)):
        begin = start - input_len if i else 0
        if begin < 0 or len(piece) < (horizon if i else input_len + horizon):
            raise ValueError(f"split_windows: piece {i} ({len(piece)} steps) leaves no window of input_len "
                             f"{input_len} and horizon {horizon}")
        out.append(windows(series[begin:start + len(piece)], input_len, horizon))
        start += len(piece)
    return out
