"""Convolutions over channels-last inputs ``(..., *spatial, C)`` in any rank: the functions :func:`conv` and
:func:`conv_transpose`, and their layers Conv and ConvTranspose.

The rank is ``len(kernel_size)``; ``Conv1D``/``Conv2D``/``Conv3D`` (and the transpose versions) also take an
int kernel size. Any number of leading batch dims is accepted, including none (a single example). Kernels
are laid out ``(*kernel_size, C_in // groups, features)``.
"""
import math
from typing import Sequence, Union

import jax
from jax import lax

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec, param_dtype_for

Padding = Union[str, int, Sequence[int], Sequence[Sequence[int]]]


def _tuple(v, rank: int, what: str):
    if isinstance(v, int):
        return (v,) * rank
    v = tuple(int(i) for i in v)
    if len(v) != rank:
        raise ValueError(f"{what} must be an int or {rank} ints, got {v}")
    return v


def _padding(padding: Padding, rank: int):
    """``"SAME"``/``"VALID"`` as they are; an int or ``rank`` ints as symmetric pads; else ``rank`` (lo, hi) pairs."""
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("SAME", "VALID", "SAME_LOWER"):
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or (lo, hi) pairs, got {padding!r}")
        return p
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    padding = tuple(padding)
    if len(padding) != rank:
        raise ValueError(f"padding needs one entry per spatial dim ({rank}), got {padding}")
    return tuple((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding)


def layout(rank: int, channels="C") -> str:
    """``"(..., H, W, C)"`` style text for error messages."""
    names = {1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}.get(rank, [f"S{i}" for i in range(rank)])
    return "(..., " + ", ".join(names + [str(channels)]) + ")"


def _dimension_numbers(rank: int):
    # input/output (N, *spatial, C); kernel (*spatial, I, O)
    io = (0, rank + 1) + tuple(range(1, rank + 1))
    kernel = (rank + 1, rank) + tuple(range(rank))
    return lax.ConvDimensionNumbers(io, kernel, io)


def _check_input(shape, rank: int, c_in: int):
    if len(shape) < rank + 1:
        raise ShapeError(f"expected input of shape {layout(rank)} with at least {rank + 1} dims, got {tuple(shape)}")
    if shape[-1] != c_in:
        raise ShapeError(f"expected input with {c_in} channels {layout(rank, c_in)}, got {tuple(shape)}")


def check_window_fits(shape, window, pad, what: str = ""):
    """Raise :class:`ShapeError` when a VALID or explicitly padded ``window`` (one extent per spatial dim, dilation
    included; ``what`` names it, default ``"HxW window"``) is larger than its padded input ``shape``, which would
    give an empty feature map. SAME padding always fits."""
    if isinstance(pad, str) and pad != "VALID":
        return
    rank = len(window)
    pads = ((0, 0),) * rank if pad == "VALID" else pad
    spatial = tuple(shape[len(shape) - rank - 1:-1])
    need = tuple(max(w - lo - hi, 1) for w, (lo, hi) in zip(window, pads))
    if any(n < m for n, m in zip(spatial, need)):
        how = "VALID padding" if pad == "VALID" else f"padding {tuple(pads)}"
        what = what or f"{'x'.join(map(str, window))} window"
        raise ShapeError(f"expected spatial dims of at least {need} {layout(rank)} for the {what} with {how}, "
                         f"got {tuple(shape)}")


def _batched(fn, x, rank: int):
    """Run ``fn`` on ``x`` with its leading dims flattened into one batch dim, then restore them."""
    lead = x.shape[:x.ndim - rank - 1]
    y = fn(x.reshape((math.prod(lead),) + x.shape[len(lead):]))
    return y.reshape(lead + y.shape[1:])


def _options(rank: int, strides, padding, dilation):
    """``(strides, padding, dilation)`` normalised for ``rank`` spatial dims; bad values raise ``ValueError``."""
    return _tuple(strides, rank, "strides"), _padding(padding, rank), _tuple(dilation, rank, "dilation")


def conv(params, x, *, strides=1, padding: Padding = "SAME", dilation=1, groups: int = 1, dtype=None):
    """Convolution of ``x: (..., *spatial, C_in)`` with ``params = {"w": (*kernel, C_in // groups, F), "b": (F,)}``
    (``b`` optional) -> ``(..., *spatial', F)``, rank ``w.ndim - 2``; options as in :func:`Conv`."""
    rank = params["w"].ndim - 2
    strides, pad, dilation = _options(rank, strides, padding, dilation)
    dn = _dimension_numbers(rank)
    return _run(params, x, rank, dtype, lambda xb, w: lax.conv_general_dilated(
        xb, w, strides, pad, rhs_dilation=dilation, dimension_numbers=dn, feature_group_count=groups))


def conv_transpose(params, x, *, strides=1, padding: Padding = "SAME", dilation=1, dtype=None):
    """Transposed convolution of ``x: (..., *spatial, C_in)`` with ``params = {"w": (*kernel, C_in, F), "b": (F,)}``
    via ``lax.conv_transpose`` -> ``(..., *spatial', F)``; options as in :func:`ConvTranspose`."""
    rank = params["w"].ndim - 2
    strides, pad, dilation = _options(rank, strides, padding, dilation)
    dn = _dimension_numbers(rank)
    return _run(params, x, rank, dtype, lambda xb, w: lax.conv_transpose(
        xb, w, strides, pad, rhs_dilation=dilation, dimension_numbers=dn))


def _run(params, x, rank, dtype, run):
    cdt = compute_dtype_for(x.dtype, dtype)
    p = cast(params, cdt)
    y = _batched(lambda xb: run(xb, p["w"]), x.astype(cdt), rank)
    return y + left_expand(p["b"], y.ndim) if "b" in p else y


def _conv_layer(name, features, kernel_size, *, groups, use_bias, w_init, b_init, param_dtype, fn,
                fits=lambda shape: None):
    rank = len(kernel_size)

    def init(key, spec):
        shape = tuple(spec.shape)
        if len(shape) < rank + 1:
            raise ShapeError(f"expected input of shape {layout(rank)} with at least {rank + 1} dims, got {shape}")
        if shape[-1] % groups:
            raise ShapeError(f"expected input channels divisible by groups={groups} {layout(rank)}, got {shape}")
        pdt = param_dtype_for(spec.dtype, param_dtype)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, tuple(kernel_size) + (shape[-1] // groups, features), pdt)}
        if use_bias:
            params["b"] = b_init(kb, (features,), pdt)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        _check_input(x.shape, rank, params["w"].shape[-2] * groups)
        fits(x.shape)
        return fn(params, x), state

    if features % groups:
        raise ValueError(f"{name}: features={features} must be divisible by groups={groups}")
    axes = {"w": ("kernel",) * len(kernel_size) + ("conv_in", "conv_out"), "b": ("conv_out",)}
    return layer(name, init, apply, axes=axes)   # logical axis names (deepcore.layers.logical)


def Conv(features: int, kernel_size: Sequence[int], *, strides=1, padding: Padding = "SAME", dilation=1,
         groups: int = 1, use_bias: bool = True, w_init=initializers.glorot_uniform(), b_init=initializers.zeros,
         param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`conv`: ``(..., *spatial, C_in) -> (..., *spatial', features)``, rank ``len(kernel_size)``.

    ``w: (*kernel_size, C_in // groups, features)``, ``b: (features,)``. ``strides`` and ``dilation`` (of the
    kernel) are ints or one per spatial dim. ``padding``: ``"SAME"`` (output ``ceil(n / stride)``), ``"VALID"``
    (output ``ceil((n - (k - 1) * dilation) / stride)``), an int or one int per dim (symmetric), or
    ``(lo, hi)`` pairs (a kernel extent larger than the padded input is a :class:`ShapeError`, not an empty
    output). ``groups`` splits the channels into feature groups (``groups == C_in`` is depthwise).
    ``w_init`` defaults to Glorot uniform over fans that include the receptive field; pass
    ``initializers.he_normal()`` before ReLUs.
    """
    kernel_size = tuple(int(k) for k in kernel_size)
    rank = len(kernel_size)
    _, pad, dilation = _options(rank, strides, padding, dilation)

    def fn(params, x):
        return conv(params, x, strides=strides, padding=padding, dilation=dilation, groups=groups, dtype=dtype)

    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))
    dims = lambda t: "x".join(map(str, t))
    what = f"{dims(kernel_size)} kernel" + ("" if extent == kernel_size else
                                            f" dilated {dims(dilation)} (extent {dims(extent)})")

    return _conv_layer("conv", features, kernel_size, groups=groups, use_bias=use_bias, w_init=w_init,
                       b_init=b_init, param_dtype=param_dtype, fn=fn,
                       fits=lambda shape: check_window_fits(shape, extent, pad, what))


def ConvTranspose(features: int, kernel_size: Sequence[int], *, strides=1, padding: Padding = "SAME",
                  dilation=1, use_bias: bool = True, w_init=initializers.glorot_uniform(),
                  b_init=initializers.zeros, param_dtype=None, dtype=None) -> Layer:
    """The layer of :func:`conv_transpose` ("fractionally strided" convolution), rank ``len(kernel_size)``.

    ``w: (*kernel_size, C_in, features)``, not flipped (as flax's ``ConvTranspose``). Output spatial size for
    input size ``n``, stride ``s`` and dilated kernel size ``k' = (k - 1) * dilation + 1``: ``"SAME"`` gives
    ``n * s`` (stride 2 doubles the size); ``"VALID"`` gives ``n * s + max(k' - s, 0)`` (equal to PyTorch's
    ``(n - 1) * s + k'`` when ``k' >= s``); explicit ``(lo, hi)`` pairs pad the stride-dilated input as
    ``lax.conv_transpose`` does.
    """
    kernel_size = tuple(int(k) for k in kernel_size)
    rank = len(kernel_size)
    _options(rank, strides, padding, dilation)   # bad options fail here, not at the first call

    def fn(params, x):
        return conv_transpose(params, x, strides=strides, padding=padding, dilation=dilation, dtype=dtype)

    return _conv_layer("conv_transpose", features, kernel_size, groups=1, use_bias=use_bias, w_init=w_init,
                       b_init=b_init, param_dtype=param_dtype, fn=fn)


def _ranked(make, rank: int, doc: str):
    def ctor(features: int, kernel_size, **kwargs) -> Layer:
        return make(features, _tuple(kernel_size, rank, "kernel_size"), **kwargs)

    ctor.__name__ = f"{make.__name__}{rank}D"
    ctor.__doc__ = f"{rank}D {doc}; ``kernel_size`` may be an int. See :func:`{make.__name__}`."
    return ctor


Conv1D, Conv2D, Conv3D = (_ranked(Conv, r, "convolution") for r in (1, 2, 3))
ConvTranspose1D, ConvTranspose2D, ConvTranspose3D = (_ranked(ConvTranspose, r, "transposed convolution")
                                                      for r in (1, 2, 3))
