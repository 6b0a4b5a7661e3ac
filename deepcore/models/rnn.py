"""Recurrent models: a character-level language model, a sequence classifier, and sampling from the LM.

* :func:`char_lm`: ids ``(B, T)`` -> Embedding -> stacked LSTM/GRU/RNN -> Dense -> logits ``(B, T, vocab)``.
  Given ``SequenceInput(ids, mask, carry)`` it returns ``(logits, carry_T)``, so training can carry the state across
  batches (truncated BPTT) and :func:`sample_continuation` can feed one token at a time.
* :func:`seq_classifier`: ``(B, T, D)`` (e.g. the 28 rows of a 28x28 image) -> LSTM/GRU -> last hidden state ->
  Dense -> logits ``(B, classes)``; ``SequenceInput(x, mask)`` classifies variable-length sequences.
* :func:`sample_continuation`: seeded temperature sampling from a :func:`char_lm`, one ``lax.scan`` under ``jit``.
"""
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp
from jax import lax

from deepcore import layers as L
from deepcore.core import Layer, ShapeError, layer, output_spec
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout as drop
from deepcore.layers.logical import logical_axes
from deepcore.layers.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, SequenceInput, SimpleRNNCell

CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}


def make_cell(kind: str, hidden: int, **cell_kwargs):
    """``"lstm"``, ``"gru"`` or ``"rnn"`` -> the cell with ``hidden`` units."""
    if kind not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {kind!r}")
    return CELLS[kind](hidden, **cell_kwargs)


def _init_children(key, spec, children):
    """Init ``[(name, layer)]`` in sequence from ``spec``; returns ``(out_spec, params)``."""
    params = {}
    for k, (name, lay) in zip(jax.random.split(key, len(children)), children):
        try:
            spec, p, _ = lay.init(k, spec)
        except ShapeError as e:
            raise e.within(name) from None
        if p:
            params[name] = p
    return spec, params


def _children_axes(children):
    """``axes`` of a layer whose params are ``{name: params}`` of ``[(name, layer)]`` (deepcore.layers.logical)."""
    return lambda params: {name: logical_axes(lay, params=params[name]) for name, lay in children if name in params}


def _call(name, lay, params, x, key=None, train=False):
    try:
        return lay.apply(params.get(name, {}), {}, x, key=key, train=train)[0]
    except ShapeError as e:
        raise e.within(name) from None


def char_lm(vocab: int, *, embed: int = 128, hidden: int = 256, num_layers: int = 1, cell: str = "lstm",
            dropout: float = 0.0, hoist_input: Union[bool, str, None] = None, unroll: int = 1, **cell_kwargs) -> Layer:
    """Character LM: ids ``(B, T)`` -> logits ``(B, T, vocab)``; ``SequenceInput(ids, mask, carry)`` -> ``(logits, carry)``.

    Params ``{"embedding": {"w"}, "<cell>": <RNN params>, "dense": {"w", "b"}}``; ``dropout`` is applied to the
    recurrent outputs in train mode (needs a key). The carry is the RNN layer's (a tuple per layer if stacked).
    """
    rnn_name = {"lstm": "lstm", "gru": "gru", "rnn": "simple_rnn"}.get(cell, cell)
    emb, head = L.Embedding(vocab, embed), L.Dense(vocab)
    rnn = RNN(make_cell(cell, hidden, **cell_kwargs), num_layers=num_layers, hoist_input=hoist_input,
              unroll=unroll)

    children = [("embedding", emb), (rnn_name, rnn), ("dense", head)]

    def init(key, spec):
        _, params = _init_children(key, spec, children)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        seq = isinstance(x, SequenceInput)
        ids, mask, carry0 = (x.x, x.mask, x.carry) if seq else (x, None, None)
        h = _call("embedding", emb, params, ids)
        h, carry = _call(rnn_name, rnn, params, SequenceInput(h, mask, carry0))
        logits = dense(params["dense"], drop(h, dropout, key=key, train=train))
        return ((logits, carry) if seq else logits), state

    return layer("char_lm", init, apply, axes=_children_axes(children))


def seq_classifier(num_classes: int, *, hidden: int = 128, cell: str = "lstm", num_layers: int = 1,
                   bidirectional: bool = False, hoist_input: Union[bool, str, None] = None, unroll: int = 1,
                   **cell_kwargs) -> Layer:
    """Sequence classifier: ``(B, T, D)`` or ``SequenceInput(x, mask)`` -> last hidden state -> logits ``(B, num_classes)``.

    Row-by-row images: ``(B, 28, 28)`` is 28 steps of 28 pixels. Params ``{"<cell>" or "bidirectional": ...,
    "dense": {"w", "b"}}``.
    """
    c = make_cell(cell, hidden, **cell_kwargs)
    kw = dict(num_layers=num_layers, return_sequences=False, hoist_input=hoist_input, unroll=unroll)
    rnn = Bidirectional(c, **kw) if bidirectional else RNN(c, **kw)
    rnn_name, head = rnn.name, L.Dense(num_classes)

    children = [(rnn_name, rnn), ("dense", head)]

    def init(key, spec):
        _, params = _init_children(key, spec, children)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        h = _call(rnn_name, rnn, params, x)
        if isinstance(x, SequenceInput):
            h = h[0]
        return dense(params["dense"], h), state

    return layer("seq_classifier", init, apply, axes=_children_axes(children))


@partial(jax.jit, static_argnames=("model", "length", "greedy"))
def _sample_continuation(model, params, state, prompt, key, temperature, length, greedy):
    (logits, carry), _ = model.apply(params, state, SequenceInput(prompt))
    last = logits[..., -1, :].astype(jnp.float32)

    def body(c, k):
        carry, last = c
        if greedy:
            tok = jnp.argmax(last, axis=-1).astype(prompt.dtype)
        else:
            tok = jax.random.categorical(k, last / temperature, axis=-1).astype(prompt.dtype)
        (logits, carry), _ = model.apply(params, state, SequenceInput(tok[..., None], carry=carry))
        return (carry, logits[..., -1, :].astype(jnp.float32)), tok

    _, toks = lax.scan(body, (carry, last), jax.random.split(key, length))
    return jnp.moveaxis(toks, 0, -1)


def sample_continuation(model: Layer, params, prompt, length: int, *, key, temperature: float = 1.0, state=None):
    """``length`` ids drawn after ``prompt`` (``(P,)`` or ``(B, P)`` ints, P >= 1): ``(length,)`` / ``(B, length)``.

    Each step feeds the previous id and the carried RNN state through ``model`` (a :func:`char_lm`) and draws
    from ``softmax(logits / temperature)`` with its own key split from ``key``; ``temperature=0`` is greedy.
    The same key gives the same text. Compiled once per (model, prompt shape, length, greedy or not).
    """
    prompt = jnp.asarray(prompt)
    if prompt.ndim not in (1, 2) or prompt.shape[-1] < 1 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ShapeError(f"sample_continuation: expected integer prompt ids (P,) or (B, P) with P >= 1, got "
                         f"{prompt.dtype} {tuple(prompt.shape)}")
    if temperature < 0:
        raise ValueError(f"sample_continuation: temperature must be >= 0, got {temperature}")
    return _sample_continuation(model, params, {} if state is None else state, prompt, key, jnp.float32(max(temperature, 1e-6)),
                   int(length), temperature == 0)
