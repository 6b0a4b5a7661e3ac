"""A stride-``s`` "SAME" transposed convolution computed as ``s*s`` stride-1 convolutions, one per output phase.

Same parameters and results as :func:`deepcore.layers.ConvTranspose2D` with ``padding="SAME"``; on XLA:CPU
several times faster (its transposed convolutions are slow, jax-ml/jax#23783).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec, param_dtype_for


def _same_pad_a(k: int, s: int) -> int:
    """Low-side padding of the stride-dilated input in ``lax.conv_transpose(..., "SAME")``."""
    return k - 1 if s > k - 1 else math.ceil((k + s - 2) / 2)


def _phase_taps(k: int, s: int):
    """For each output phase ``a`` (of ``s``): the kernel taps it uses and the input offset of the first.

    Output ``y[s*i + a] = sum_t w[t] * x[i + (a + t - pad) / s]`` over taps ``t`` with ``a + t - pad`` divisible
    by ``s`` (the dilated-input form of a transposed convolution)."""
    pad = _same_pad_a(k, s)
    out = []
    for a in range(s):
        taps = [t for t in range(k) if (a + t - pad) % s == 0]
        out.append((taps, (a + taps[0] - pad) // s))
    return out


def PhaseConvTranspose(features: int, kernel_size: int = 4, *, strides: int = 2, use_bias: bool = True,
                       w_init=initializers.glorot_uniform(), b_init=initializers.zeros, param_dtype=None,
                       dtype=None) -> Layer:
    """2D transposed convolution, ``"SAME"`` padding: ``(..., H, W, C) -> (..., s*H, s*W, features)``.

    ``w: (k, k, C, features)``, ``b: (features,)``, equal to :func:`deepcore.layers.ConvTranspose2D` with
    ``padding="SAME"`` for the same parameters. Each of the ``s*s`` output phases ``(a, b)`` is a stride-1
    convolution of the input with the taps of ``w`` that land on it; the phases are interleaved
    (depth-to-space). Needs ``kernel_size >= strides``.
    """
    k, s = int(kernel_size), int(strides)
    if k < s:
        raise ValueError(f"PhaseConvTranspose: kernel_size={k} must be >= strides={s}")
    phases = _phase_taps(k, s)
    dn = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))

    def run(x, w):
        rows = []
        for taps_a, lo_a in phases:
            cols = []
            for taps_b, lo_b in phases:
                kern = w[taps_a[0]:taps_a[-1] + 1:s, taps_b[0]:taps_b[-1] + 1:s]
                pad = ((-lo_a, lo_a + len(taps_a) - 1), (-lo_b, lo_b + len(taps_b) - 1))
                cols.append(lax.conv_general_dilated(x, kern, (1, 1), pad, dimension_numbers=dn))
            rows.append(jnp.stack(cols, 3))                      # (B, H, W, s_b, F)
        y = jnp.stack(rows, 3)                                   # (B, H, W, s_a, s_b, F)
        b, h, w_, _, _, f = y.shape
        return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w_ * s, f)

    def init(key, spec):
        if len(spec.shape) < 3:
            raise ShapeError(f"expected input of shape (..., H, W, C) with at least 3 dims, got {tuple(spec.shape)}")
        pdt = param_dtype_for(spec.dtype, param_dtype)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (k, k, spec.shape[-1], features), pdt)}
        if use_bias:
            params["b"] = b_init(kb, (features,), pdt)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        c_in = params["w"].shape[-2]
        if x.ndim < 3 or x.shape[-1] != c_in:
            raise ShapeError(f"expected input with {c_in} channels (..., H, W, {c_in}), got {tuple(x.shape)}")
        cdt = compute_dtype_for(x.dtype, dtype)
        p = cast(params, cdt)
        lead = x.shape[:-3]
        y = run(x.astype(cdt).reshape((math.prod(lead),) + x.shape[-3:]), p["w"])
        y = y.reshape(lead + y.shape[1:])
        if use_bias:
            y = y + left_expand(p["b"], y.ndim)
        return y, state

    axes = {"w": ("kernel", "kernel", "conv_in", "conv_out"), "b": ("conv_out",)}   # as conv.py's ConvTranspose2D
    return layer("conv_transpose", init, apply, axes=axes)
