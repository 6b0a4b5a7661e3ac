"""Running recurrent cells (:mod:`deepcore.layers.cells`) over sequences with ``lax.scan``, and the layers.

:func:`scan_cell` runs a cell over ``xs: (..., T, D)`` and returns ``(carry_T, hs: (..., T, H))``. Its
``hoist_input`` picks where the input projection ``x_t @ wi`` happens, one of :data:`INPUT_MODES`:
``"hoisted"`` (all steps as one matmul before the loop), ``"per_step"`` (two matmuls a step) or ``"fused"``
(one ``[x_t, h] @ [wi; wh]`` matmul a step); ``True``/``False`` mean ``"hoisted"``/``"per_step"``.

Layers (:func:`RNN`, :func:`SimpleRNN`, :func:`LSTM`, :func:`GRU`, :func:`Bidirectional`) follow the layer
protocol. Their input is either an array ``(B, T, D)`` / ``(T, D)`` giving ``y``, or a :class:`SequenceInput`
``SequenceInput(x, mask=None, carry=None)`` giving ``(y, carry_T)``: a mask ``(B, T)`` marks valid steps (padded
steps keep the carry and output zeros, so they get zero gradient), ``carry`` is the initial carry (``None``:
zeros). Passing the returned carry into the next call continues the sequence, which is truncated
backpropagation through time across batches. ``init`` takes the spec of ``x`` alone. ``y`` is ``(B, T, H)``
(every hidden state) or, with ``return_sequences=False``, ``(B, H)``: the hidden state after the last valid
step (for a backward run: after step 0).
"""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
from jax import lax

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, left_expand, output_spec, param_dtype_for
from deepcore.layers.cells import Cell, GRUCell, LSTMCell, SimpleRNNCell, cell_axes


class SequenceInput(NamedTuple):
    """A sequence input with its mask and initial carry: ``x (..., T, D)``, ``mask (..., T)`` bool, ``carry``.

    Layers given a ``SequenceInput`` return ``(y, carry_T)``. Build masks from lengths with :func:`length_mask`.
    """

    x: Any
    mask: Any = None
    carry: Any = None


def length_mask(lengths, T: int):
    """``(...)`` int lengths -> ``(..., T)`` bool mask, True at steps ``t < length`` (right padding)."""
    lengths = jnp.asarray(lengths)[..., None]
    return left_expand(jnp.arange(T), lengths.ndim) < lengths


# ----------------------------------------------------------------------------- running a cell

INPUT_MODES = ("hoisted", "per_step", "fused")   # where scan_cell computes the input projection x_t @ wi


def input_mode(hoist_input: Union[bool, str, None]) -> str:
    """One of :data:`INPUT_MODES` for a ``hoist_input`` value (``True``: ``"hoisted"``, ``False``:
    ``"per_step"``, ``None``: :func:`default_hoist_input`)."""
    if hoist_input is None:
        return default_hoist_input()
    if hoist_input is True or hoist_input is False:
        return "hoisted" if hoist_input else "per_step"
    if hoist_input not in INPUT_MODES:
        raise ValueError(f"hoist_input must be one of {INPUT_MODES} (or True, False, None), got {hoist_input!r}")
    return hoist_input


def default_hoist_input() -> str:
    """The input mode by default, per backend: ``"per_step"`` on CPU, ``"hoisted"`` elsewhere.

    On CPU (W3 in bench/rnn_hoist.py, 2 idle cores) keeping both matmuls in the loop ran as fast as Flax linen's
    OptimizedLSTMCell (the same computation; 0.99-1.00x), hoisting was ~30% slower, and ``"fused"`` 4% faster
    (0.96x in two idle runs; it used to swing both ways on a shared machine), so ``"fused"`` is the option to pass
    for the last few percent.
    On accelerators one big matmul outside the loop is the usual winner.
    """
    return "per_step" if jax.default_backend() == "cpu" else "hoisted"


def _where_tree(m, new, old):
    return jax.tree.map(lambda a, b: jnp.where(m, a, b), new, old)


def scan_cell(cell: Cell, params, carry0, xs, mask=None, *, hoist_input: Union[bool, str, None] = None,
              reverse: bool = False, unroll: int = 1):
    """Run ``cell`` over ``xs: (..., T, D)`` from ``carry0`` (``None``: zeros); returns ``(carry_T, hs (..., T, H))``.

    ``mask: (..., T)`` bool: at steps where it is False the carry is kept and the output is zero. ``reverse`` runs
    from ``T-1`` to 0 (so right padding is skipped before the sequence starts). ``hoist_input``: ``"hoisted"``
    computes the input projection of all steps as one matmul before the loop, ``"per_step"`` keeps it in the loop
    (two matmuls a step, ``cell.step``), ``"fused"`` makes it one ``[x_t, h] @ [wi; wh]`` matmul a step
    (``cell.fused``; cells without one use ``cell.step``); see :func:`input_mode`. ``unroll`` is
    passed to ``lax.scan``. ``params`` are used in their own dtype (cast them beforehand).
    """
    if xs.ndim < 2:
        raise ShapeError(f"expected a sequence (..., T, D), got {tuple(xs.shape)}")
    hoist = input_mode(hoist_input)
    batch = xs.shape[:-2]
    if carry0 is None:
        carry0 = cell.zero_carry(batch, xs.dtype)
    xs_t = jnp.moveaxis(xs, -2, 0)                           # (T, ..., D)
    if hoist == "hoisted":
        inputs, fn = cell.project(params, xs_t), partial(cell.recur, params)  # (T, ..., G*H)
    elif hoist == "fused" and cell.fused is not None:
        inputs, fn = xs_t, cell.fused(params)
    else:
        inputs, fn = xs_t, partial(cell.step, params)
    if mask is None:
        def body(carry, inp):
            return fn(carry, inp)

        carry, hs = lax.scan(body, carry0, inputs, reverse=reverse, unroll=unroll)
    else:
        if mask.shape != xs.shape[:-1]:
            raise ShapeError(f"expected a mask of shape {tuple(xs.shape[:-1])} (..., T), got {tuple(mask.shape)}")
        ms = jnp.moveaxis(mask.astype(bool), -1, 0)[..., None]  # (T, ..., 1)

        def body(carry, inp):
            x, m = inp
            new, h = fn(carry, x)
            return _where_tree(m, new, carry), jnp.where(m, h, jnp.zeros_like(h))

        carry, hs = lax.scan(body, carry0, (inputs, ms), reverse=reverse, unroll=unroll)
    return carry, jnp.moveaxis(hs, 0, -2)


# ----------------------------------------------------------------------------- layers

def _unpack(x):
    if isinstance(x, SequenceInput):
        return x.x, x.mask, x.carry, True
    return x, None, None, False


def _check_seq(shape, d_in):
    if len(shape) < 2 or (d_in is not None and shape[-1] != d_in):
        want = f"(B, T, {d_in}) or (T, {d_in})" if d_in is not None else "(B, T, D) or (T, D)"
        raise ShapeError(f"expected a sequence {want}, got {tuple(shape)}")


def _stack_run(cell, num_layers, params, carry0, x, mask, *, reverse, hoist, unroll):
    """Run ``num_layers`` cells one over the other; params/carry flat for one layer, per layer otherwise."""
    if num_layers == 1:
        return scan_cell(cell, params, carry0, x, mask, hoist_input=hoist, reverse=reverse, unroll=unroll)
    carries = []
    for i in range(num_layers):
        c0 = None if carry0 is None else carry0[i]
        c, x = scan_cell(cell, params[f"layer_{i}"], c0, x, mask, hoist_input=hoist, reverse=reverse,
                         unroll=unroll)
        carries.append(c)
    return tuple(carries), x


def _stack_init(cell, num_layers, key, d_in, pdt):
    if num_layers == 1:
        return cell.init(key, d_in, pdt)
    keys = jax.random.split(key, num_layers)
    return {f"layer_{i}": cell.init(keys[i], d_in if i == 0 else cell.hidden, pdt) for i in range(num_layers)}


def _last(cell, num_layers, carry):
    return cell.output(carry if num_layers == 1 else carry[-1])


def RNN(cell: Cell, *, num_layers: int = 1, return_sequences: bool = True, reverse: bool = False,
        hoist_input: Union[bool, str, None] = None, unroll: int = 1, param_dtype=None, dtype=None) -> Layer:
    """Run ``cell`` (``num_layers`` stacked copies) over a sequence: ``(B, T, D) -> (B, T, H)`` or ``(B, H)``.

    Input an array for ``y``, or ``SequenceInput(x, mask, carry)`` for ``(y, carry_T)`` (see the module doc). Params are the
    cell's dict for one layer, ``{"layer_0": ..., "layer_1": ...}`` for more; the carry likewise is the cell's carry
    or a tuple of them. ``hoist_input``: one of :data:`INPUT_MODES` (see :func:`scan_cell`); ``None`` picks
    :func:`default_hoist_input` when the layer is built.
    """
    hoist = input_mode(hoist_input)

    def init(key, spec):
        _check_seq(spec.shape, None)
        params = _stack_init(cell, num_layers, key, spec.shape[-1], param_dtype_for(spec.dtype, param_dtype))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        x, mask, carry0, seq = _unpack(x)
        d_in = (params if num_layers == 1 else params["layer_0"])["wi"].shape[0]
        _check_seq(x.shape, d_in)
        cdt = compute_dtype_for(x.dtype, dtype)
        carry0 = None if carry0 is None else cast(carry0, cdt)
        carry, ys = _stack_run(cell, num_layers, cast(params, cdt), carry0, x.astype(cdt), mask,
                               reverse=reverse, hoist=hoist, unroll=unroll)
        y = ys if return_sequences else _last(cell, num_layers, carry)
        return ((y, carry) if seq else y), state

    return layer(cell.name, init, apply, axes=cell_axes)   # logical axis names (deepcore.layers.logical)


def SimpleRNN(hidden: int, *, activation=jnp.tanh, w_init=initializers.glorot_uniform,
              u_init=initializers.orthogonal(), b_init=initializers.zeros, **rnn_kwargs) -> Layer:
    """:func:`RNN` over a :func:`SimpleRNNCell` (``rnn_kwargs``: num_layers, return_sequences, reverse, ...)."""
    return RNN(SimpleRNNCell(hidden, activation=activation, w_init=w_init, u_init=u_init, b_init=b_init),
               **rnn_kwargs)


def LSTM(hidden: int, *, forget_bias: float = 1.0, peepholes: bool = False, w_init=initializers.glorot_uniform,
         u_init=initializers.orthogonal(), b_init=initializers.zeros, **rnn_kwargs) -> Layer:
    """:func:`RNN` over an :func:`LSTMCell` (``rnn_kwargs``: num_layers, return_sequences, reverse, ...)."""
    return RNN(LSTMCell(hidden, forget_bias=forget_bias, peepholes=peepholes, w_init=w_init, u_init=u_init,
                        b_init=b_init), **rnn_kwargs)


def GRU(hidden: int, *, w_init=initializers.glorot_uniform, u_init=initializers.orthogonal(),
        b_init=initializers.zeros, **rnn_kwargs) -> Layer:
    """:func:`RNN` over a :func:`GRUCell` (``rnn_kwargs``: num_layers, return_sequences, reverse, ...)."""
    return RNN(GRUCell(hidden, w_init=w_init, u_init=u_init, b_init=b_init), **rnn_kwargs)


def Bidirectional(cell: Cell, *, num_layers: int = 1, return_sequences: bool = True,
                  hoist_input: Union[bool, str, None] = None, unroll: int = 1, param_dtype=None, dtype=None) -> Layer:
    """Forward and backward runs of ``cell``, outputs concatenated: ``(B, T, D) -> (B, T, 2H)`` or ``(B, 2H)``.

    The backward run starts at the last valid step of each sequence when a mask is given (right padding is
    skipped). With ``num_layers > 1`` each layer reads the previous layer's concatenated outputs. Params
    ``{"forward": ..., "backward": ...}`` (per layer ``{"layer_i": {...}}``); carry ``(forward, backward)`` (per
    layer a tuple of those). With ``return_sequences=False``: forward state after the last valid step
    concatenated with the backward state after step 0.
    """
    hoist = input_mode(hoist_input)

    def init_one(key, d_in, pdt):
        kf, kb = jax.random.split(key)
        return {"forward": cell.init(kf, d_in, pdt), "backward": cell.init(kb, d_in, pdt)}

    def init(key, spec):
        _check_seq(spec.shape, None)
        pdt = param_dtype_for(spec.dtype, param_dtype)
        if num_layers == 1:
            params = init_one(key, spec.shape[-1], pdt)
        else:
            keys = jax.random.split(key, num_layers)
            params = {f"layer_{i}": init_one(keys[i], spec.shape[-1] if i == 0 else 2 * cell.hidden, pdt)
                      for i in range(num_layers)}
        return output_spec(apply, params, {}, spec), params, {}

    def run_one(p, c0, x, mask):
        cf, cb = (None, None) if c0 is None else c0
        cf, yf = scan_cell(cell, p["forward"], cf, x, mask, hoist_input=hoist, unroll=unroll)
        cb, yb = scan_cell(cell, p["backward"], cb, x, mask, hoist_input=hoist, unroll=unroll, reverse=True)
        return (cf, cb), jnp.concatenate([yf, yb], axis=-1)

    def apply(params, state, x, *, key=None, train=False):
        x, mask, carry0, seq = _unpack(x)
        first = params if num_layers == 1 else params["layer_0"]
        _check_seq(x.shape, first["forward"]["wi"].shape[0])
        cdt = compute_dtype_for(x.dtype, dtype)
        p = cast(params, cdt)
        carry0 = None if carry0 is None else cast(carry0, cdt)
        x = x.astype(cdt)
        if num_layers == 1:
            carry, x = run_one(p, carry0, x, mask)
            last = carry
        else:
            carry = []
            for i in range(num_layers):
                c, x = run_one(p[f"layer_{i}"], None if carry0 is None else carry0[i], x, mask)
                carry.append(c)
            carry, last = tuple(carry), carry[-1]
        y = x if return_sequences else jnp.concatenate([cell.output(last[0]), cell.output(last[1])], axis=-1)
        return ((y, carry) if seq else y), state

    return layer("bidirectional", init, apply, axes=cell_axes)


__all__ = ["SequenceInput", "length_mask", "INPUT_MODES", "input_mode", "default_hoist_input", "scan_cell", "RNN",
           "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Cell", "SimpleRNNCell", "LSTMCell", "GRUCell"]
