"""Neural multi-step forecasters: input windows ``(B, L)`` -> forecasts ``(B, H, Q)`` (H steps, Q quantiles).

    model = forecaster("gru", horizon=11, hidden=32)             # point forecasts (B, 11, 1)
    model = forecaster("tcn", horizon=11, num_quantiles=3)      # e.g. the 0.1, 0.5, 0.9 quantiles

Every kind reads the window relative to its last value (``u = x - x[:, -1:]``, so a level shift outside the
training range changes nothing but the level) and adds its output back to that value (a residual over the naive
forecast). Beside the network runs a linear "highway" from the ``L`` lags to the ``H * Q`` outputs (LSTNet's
autoregressive component, Lai et al. 2018): the network learns what a linear autoregression misses.
Bodies, each reading ``u[..., None]`` ``(B, L, 1)`` and giving features ``(B, hidden)``:

* ``"lstm"`` / ``"gru"``: ``depth`` stacked recurrent layers, the last hidden state;
* ``"tcn"``: a ``Dense(hidden)`` lift, then ``depth`` residual causal convolutions (``kernel_size``, dilations
  1, 2, 4, ...) with ReLU, the last time step;
* ``"transformer"``: the window cut into patches of ``patch`` steps (zeros padded in front; PatchTST, Nie et al.
  2023: fewer, richer tokens), a ``Dense(hidden)`` lift, sinusoidal positions, ``depth`` pre-LN blocks of
  ``heads`` heads (bidirectional within the window), a final LayerNorm, the last position.

Then dropout (train mode) and ``Dense(H * Q)``. Parameters ``{"body", "head", "highway"}``.
"""
from __future__ import annotations

import jax.numpy as jnp

from deepcore import initializers
from deepcore import layers as L
from deepcore.core import Layer, ShapeError
from deepcore.models.transformer_stack import TransformerStack

KINDS = ("lstm", "gru", "tcn", "transformer")   # and "linear": the highway alone (an ablation, no network)


def _last(x):
    return x[..., -1, :]


def causal_conv_block(features: int, kernel_size: int, dilation: int) -> Layer:
    """``x + relu(causal dilated conv(x))`` over ``(B, T, features)``: output step ``t`` sees steps ``<= t``."""
    pad = ((kernel_size - 1) * dilation, 0)
    conv = L.Conv1D(features, kernel_size, dilation=dilation, padding=[pad], w_init=initializers.he_normal())
    return L.residual(L.serial(conv, L.Relu))


def patches(x, patch: int):
    """``(B, T, C) -> (B, ceil(T / patch), patch * C)``: consecutive steps as one token, zeros padded in front."""
    pad = -x.shape[-2] % patch
    x = jnp.pad(x, ((0, 0), (pad, 0), (0, 0)))
    return x.reshape(x.shape[0], x.shape[1] // patch, patch * x.shape[2])


def forecast_body(kind: str, hidden: int, depth: int, *, heads: int = 4, kernel_size: int = 3, patch: int = 4,
                  dropout: float = 0.0) -> Layer:
    """The network of :func:`forecaster`: ``(B, L, 1) -> (B, hidden)``; ``kind`` one of :data:`KINDS`."""
    if kind in ("lstm", "gru"):
        cell = L.LSTMCell(hidden) if kind == "lstm" else L.GRUCell(hidden)
        return L.RNN(cell, num_layers=depth, return_sequences=False)
    if kind == "tcn":
        blocks = [causal_conv_block(hidden, kernel_size, 2 ** i) for i in range(depth)]
        return L.serial(L.Dense(hidden), *blocks, L.Lambda(_last, "last_step"))
    if kind == "transformer":
        stack = TransformerStack(depth, heads, causal=False, dropout=dropout)
        return L.serial(L.Lambda(lambda x: patches(x, patch), "patches"), L.Dense(hidden), L.SinusoidalPositions(),
                        stack, L.LayerNorm(), L.Lambda(_last, "last_step"))
    raise ValueError(f"forecast_body: kind: expected one of {KINDS}, got {kind!r}")


def forecaster(kind: str, horizon: int, *, num_quantiles: int = 1, hidden: int = 32, depth: int = 1,
               heads: int = 4, kernel_size: int = 3, patch: int = 4, dropout: float = 0.0,
               highway: bool = True) -> Layer:
    """Windows ``(B, L)`` -> forecasts ``(B, horizon, num_quantiles)``; see the module doc."""
    for name, v in (("horizon", horizon), ("num_quantiles", num_quantiles), ("hidden", hidden), ("depth", depth)):
        if int(v) != v or v < 1:
            raise ValueError(f"forecaster: {name}: expected an integer >= 1, got {v!r}")
    out = horizon * num_quantiles
    net = kind != "linear"
    children = {}
    if net:
        children["body"] = forecast_body(kind, hidden, depth, heads=heads, kernel_size=kernel_size, patch=patch,
                                         dropout=dropout)
        children["head"] = L.serial(L.Dropout(dropout), L.Dense(out))
    if highway or not net:
        children["highway"] = L.Dense(out, w_init=initializers.zeros)

    def forward(call, x):
        if x.ndim != 2:
            raise ShapeError(f"expected input windows (B, L), got {tuple(x.shape)}")
        level = x[:, -1:]
        u = x - level
        y = call("head", call("body", u[..., None])) if net else 0.0
        if "highway" in children:
            y = y + call("highway", u)
        return level[..., None] + jnp.reshape(y, (x.shape[0], horizon, num_quantiles))

    return L.compose(f"{kind}_forecaster", children, forward)


__all__ = ["KINDS", "forecaster", "forecast_body", "causal_conv_block", "patches"]
