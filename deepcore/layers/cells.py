"""Recurrent cells: SimpleRNN, LSTM and GRU as pure functions over a parameter dict (run them with
:func:`deepcore.layers.recurrent.scan_cell` or the layers there).

A cell is a :class:`Cell`:

* ``cell.init(key, d_in, dtype) -> params``
* ``cell.step(params, carry, x_t) -> (carry, h_t)``: one time step, ``x_t: (..., d_in)``, ``h_t: (..., H)``.
  It is ``recur(params, carry, project(params, x_t))``: ``project`` is the input half of the gate
  pre-activations (``x @ wi + b``), ``recur`` adds the recurrent half and applies the gates. Splitting the
  two lets ``scan_cell`` compute ``project`` for all steps as one matmul outside the loop (``"hoisted"``).
* ``cell.zero_carry(batch_shape, dtype) -> carry``: ``h`` (SimpleRNN, GRU) or ``(h, c)`` (LSTM), zeros.
* ``cell.fused(params) -> step(carry, x_t)`` (SimpleRNN, LSTM; ``None`` for GRU): the same step as one matmul
  ``concat([x_t, h]) @ concat([wi, wh])``, the weights concatenated once, before the loop (``"fused"``).

Logical axis names of the parameters (:func:`cell_axes`, for :mod:`deepcore.layers.logical`): ``wi: ("rnn_in",
"gates")``, ``wh: ("hidden", "gates")``, ``b: ("gates",)``, the per-unit vectors (peepholes, GRU's ``bhn``)
``("hidden",)``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import left_expand


AXES = {"wi": ("rnn_in", "gates"), "wh": ("hidden", "gates"), "b": ("gates",), "pi": ("hidden",),
        "pf": ("hidden",), "po": ("hidden",), "bhn": ("hidden",)}


def cell_axes(params) -> dict:
    """The logical axes of a cell's parameters (:data:`AXES`), or of a dict of them (stacked layers
    ``{"layer_i": ...}``, directions ``{"forward": ..., "backward": ...}``), mirroring ``params``."""
    if "wi" in params:
        return {k: AXES[k] for k in params if k in AXES}   # another name: logical_axes names its path
    return {k: cell_axes(v) for k, v in params.items()}


class Cell(NamedTuple):
    """A recurrent cell: ``init``, ``project``, ``recur``, ``zero_carry`` and ``output`` (see the module doc)."""

    name: str
    hidden: int
    init: Callable       # (key, d_in, dtype) -> params
    project: Callable    # (params, x (..., D)) -> gate pre-activations from the input (..., G*H)
    recur: Callable      # (params, carry, gx) -> (carry, h)
    zero_carry: Callable  # (batch_shape, dtype) -> carry
    output: Callable     # carry -> h (..., H)
    fused: Optional[Callable] = None  # params -> step(carry, x) with one (D+H, G*H) matmul, or None

    def step(self, params, carry, x_t):
        """One step: ``(carry, x_t (..., D)) -> (carry, h_t (..., H))``."""
        return self.recur(params, carry, self.project(params, x_t))


def _gate_params(key, d_in, hidden, gates, dtype, w_init, u_init, b_init):
    """``wi: (d_in, G*H)``, ``wh: (H, G*H)`` (``u_init`` per gate block, e.g. orthogonal), ``b: (G*H,)``."""
    kw, ku, kb = jax.random.split(key, 3)
    wh = jnp.concatenate([u_init(k, (hidden, hidden), dtype) for k in jax.random.split(ku, gates)], axis=1)
    return {"wi": w_init(kw, (d_in, gates * hidden), dtype), "wh": wh, "b": b_init(kb, (gates * hidden,), dtype)}


def _project(params, x):
    y = jnp.matmul(x, params["wi"])
    return y + left_expand(params["b"], y.ndim)


def _fuse(gates):
    """``fused`` for cells whose pre-activations are ``x @ wi + h @ wh + b``; ``gates(params, carry, z)``."""

    def fused(params):
        w, b = jnp.concatenate([params["wi"], params["wh"]], axis=0), params["b"]

        def step(carry, x):
            h = carry[0] if isinstance(carry, tuple) else carry
            z = jnp.matmul(jnp.concatenate([x, h], axis=-1), w)
            return gates(params, carry, z + left_expand(b, z.ndim))

        return step

    return fused


def _zeros(hidden):
    return lambda batch_shape, dtype: jnp.zeros(tuple(batch_shape) + (hidden,), dtype)


def SimpleRNNCell(hidden: int, *, activation=jnp.tanh, w_init=initializers.glorot_uniform,
                  u_init=initializers.orthogonal(), b_init=initializers.zeros) -> Cell:
    """``h' = tanh(x @ wi + h @ wh + b)``; carry ``h``."""

    def init(key, d_in, dtype):
        return _gate_params(key, d_in, hidden, 1, dtype, w_init, u_init, b_init)

    def gates(params, h, z):
        h = activation(z)
        return h, h

    def recur(params, h, gx):
        return gates(params, h, gx + jnp.matmul(h, params["wh"]))

    return Cell("simple_rnn", hidden, init, _project, recur, _zeros(hidden), lambda h: h, _fuse(gates))


def LSTMCell(hidden: int, *, forget_bias: float = 1.0, peepholes: bool = False,
             w_init=initializers.glorot_uniform, u_init=initializers.orthogonal(),
             b_init=initializers.zeros) -> Cell:
    """LSTM with gates ``i, f, g, o`` (in that order in ``wi: (D, 4H)``, ``wh: (H, 4H)``, ``b: (4H,)``).

    ``c' = f * c + i * g``, ``h' = o * tanh(c')``; carry ``(h, c)``. The forget block of ``b`` starts at
    ``forget_bias`` (Jozefowicz et al. 2015). ``peepholes=True`` adds ``pi * c``, ``pf * c`` to the input and
    forget gates and ``po * c'`` to the output gate (Gers & Schmidhuber 2000), ``p*: (H,)`` initialised to zeros.
    """

    def init(key, d_in, dtype):
        p = _gate_params(key, d_in, hidden, 4, dtype, w_init, u_init, b_init)
        p["b"] = p["b"].at[hidden:2 * hidden].add(jnp.asarray(forget_bias, dtype))
        if peepholes:
            p.update({n: jnp.zeros((hidden,), dtype) for n in ("pi", "pf", "po")})
        return p

    def gates(params, carry, z):
        c = carry[1]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        if peepholes:
            i, f = i + left_expand(params["pi"], c.ndim) * c, f + left_expand(params["pf"], c.ndim) * c
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        if peepholes:
            o = o + left_expand(params["po"], c.ndim) * c
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def recur(params, carry, gx):
        return gates(params, carry, gx + jnp.matmul(carry[0], params["wh"]))

    def zero_carry(batch_shape, dtype):
        z = _zeros(hidden)(batch_shape, dtype)
        return z, z

    return Cell("lstm", hidden, init, _project, recur, zero_carry, lambda carry: carry[0], _fuse(gates))


def GRUCell(hidden: int, *, w_init=initializers.glorot_uniform, u_init=initializers.orthogonal(),
            b_init=initializers.zeros) -> Cell:
    """GRU (Cho et al. 2014, the cuDNN/PyTorch variant) with gates ``r, z, n``; carry ``h``.

    ``r = σ(x wi_r + h wh_r + b_r)``, ``z = σ(x wi_z + h wh_z + b_z)``,
    ``n = tanh(x wi_n + b_n + r * (h wh_n + bhn))``, ``h' = (1 - z) * n + z * h``. ``bhn: (H,)``.
    """

    def init(key, d_in, dtype):
        k, kb = jax.random.split(key)
        p = _gate_params(k, d_in, hidden, 3, dtype, w_init, u_init, b_init)
        p["bhn"] = b_init(kb, (hidden,), dtype)
        return p

    def recur(params, h, gx):
        gh = jnp.matmul(h, params["wh"])
        xr, xz, xn = jnp.split(gx, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * (hn + left_expand(params["bhn"], hn.ndim)))
        h = (1.0 - z) * n + z * h
        return h, h

    return Cell("gru", hidden, init, _project, recur, _zeros(hidden), lambda h: h)


__all__ = ["AXES", "cell_axes", "Cell", "SimpleRNNCell", "LSTMCell", "GRUCell"]
