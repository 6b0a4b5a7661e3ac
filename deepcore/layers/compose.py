"""``compose``: a layer from named sub-layers and a forward function, without splitting keys by hand.

    def forward(call, x):                           # call(name, input) applies that child
        h = call("proj", x)
        return h * jax.nn.sigmoid(call("gate", x)) + call("skip", x)

    GatedSkip = lambda d: compose("gated_skip", {"proj": Dense(d), "gate": Dense(d), "skip": Dense(d)}, forward)

``init`` runs ``forward`` once abstractly (``jax.eval_shape``) to learn each child's input spec, then initialises
every child with its own key; parameters and state are ``{child name: child's tree}`` like ``serial``'s (a child
without parameters or state leaves no entry). ``apply`` hands each child its parameters, state, key and ``train``.
"""
from __future__ import annotations

from typing import Callable, Dict

import jax

from deepcore.core import Layer, ShapeError, as_spec, layer


class _Composite:
    """The children of one ``compose`` layer and how to run ``forward`` over them."""

    def __init__(self, name: str, children: Dict[str, Layer], forward: Callable):
        for child, lay in children.items():
            if not isinstance(lay, Layer):
                raise TypeError(f"compose {name}: child {child!r}: expected a deepcore Layer, got {lay!r}")
        self.name, self.children, self.forward = name, dict(children), forward
        self.index = {child: i for i, child in enumerate(children)}

    def run(self, params, state, x, key, train, on_first=None):
        """``(forward(call, x), new_state)``; ``on_first(child, input)`` runs before a child's first call."""
        counts, new_state = {}, dict(state)

        def call(child, inp):
            if child not in self.children:
                raise KeyError(f"compose {self.name}: no child {child!r}; children: {tuple(self.children)}")
            n = counts[child] = counts.get(child, 0) + 1
            if on_first is not None and n == 1:
                on_first(child, inp)
            k = None if key is None else jax.random.fold_in(jax.random.fold_in(key, self.index[child]), n - 1)
            try:
                y, s = self.children[child].apply(params.get(child, {}), state.get(child, {}), inp, key=k,
                                                  train=train)
            except ShapeError as e:
                raise e.within(child) from None
            if s:
                new_state[child] = s
            return y

        call.train = train
        return self.forward(call, x), new_state

    def trace(self, spec):
        """``(out_spec, {child name: the input spec it sees first})``, computed abstractly."""
        specs = {}

        def traced(x):   # the children's trial parameters live (and die) inside this trace: no tracer outlives it
            params, state = {}, {}

            def record(child, inp):  # trace the child's init at its first call, with the spec it sees
                specs[child] = jax.ShapeDtypeStruct(inp.shape, inp.dtype)
                try:
                    _, params[child], state[child] = self.children[child].init(jax.random.PRNGKey(0), specs[child])
                except ShapeError as e:
                    raise e.within(child) from None

            return self.run(params, state, x, None, False, record)[0]

        try:
            out = jax.eval_shape(traced, as_spec(spec))
        except ShapeError:
            raise
        except TypeError as e:  # forward's own arithmetic on the children's outputs
            shapes = {c: tuple(s.shape) for c, s in specs.items()}
            raise ShapeError(f"forward failed on input {tuple(as_spec(spec).shape)} (children's input specs "
                             f"{shapes}): {str(e).splitlines()[0]}") from None
        return out, specs

    def init(self, key, spec):
        out, specs = self.trace(spec)
        params, state = {}, {}
        for child, lay in self.children.items():  # the real initialisation, outside the trace
            if child not in specs:
                raise ValueError(f"compose {self.name}: child {child!r} is never called by forward")
            _, p, s = lay.init(jax.random.fold_in(key, self.index[child]), specs[child])
            if p:
                params[child] = p
            if s:
                state[child] = s
        return out, params, state

    def apply(self, params, state, x, *, key=None, train=False):
        return self.run(params, state, x, key, train)


def compose(name: str, children: Dict[str, Layer], forward: Callable) -> Layer:
    """A :class:`Layer` named ``name`` whose ``apply`` is ``forward(call, x)``.

    ``call(child_name, input) -> output`` runs that child (any number of times: a child called twice shares its
    parameters; its state is the last call's); ``call.train`` is the mode. Child ``i`` (dict order) gets key
    ``fold_in(key, i)``, folded again with the call count when called more than once. ``forward`` may return
    any pytree. A child's shape error names ``name/child_name``.
    """
    comp = _Composite(name, children, forward)
    lay = layer(name, comp.init, comp.apply, tuple(comp.children.items()))
    lay.init.child_specs = lambda spec: comp.trace(spec)[1]  # read by tree.summary
    return lay
