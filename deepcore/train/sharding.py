"""Sharding by rules: a named mesh of any shape, logical axes -> mesh axes, for params, optimiser state, batches.

::

    from deepcore.train import sharding as S
    mesh = S.make_mesh({"data": 2, "tensor": 4})              # any axis names; sizes multiply to the devices
    axes = S.logical_axes(model, spec)                         # declared by the layers (deepcore.layers.logical)
    kw = S.step_shardings(state, mesh, "default", axes=axes, tx=tx)    # or a list of (logical, mesh axes) rules
    state = parallel.place_state(state, kw["state_sharding"])
    step = train_step(S.with_rules(loss_fn, mesh, "default"), tx, **kw)   # activations pinned by the same rules

Named rule sets (:data:`RULE_SETS`): ``"default"`` (:data:`RULES`: MaxText-style names; the layout follows the
mesh: ``data`` splits batches, ``fsdp`` batches and the ``embed``/``dense_in`` axes of weights, ``tensor`` the
Megatron axes ``mlp``/``heads``/``qkv``/``vocab``/``conv_out``/``dense_out``; a recurrent cell's ``gates`` stay
whole, as a tensor split would gather the hidden state every step; absent mesh axes count as size 1),
``"replicated"`` and ``"fsdp"`` (the rule-free layouts of :mod:`deepcore.train.parallel`, on mesh axis
``data``). A rule list given by the user is checked before anything compiles: a rule naming no logical axis of
the parameters, a parameter axis no rule covers and a dimension that does not divide its mesh axes each raise
``ValueError`` naming the parameter path. Sequence sharding of activations: add a rule for ``"length"``.
The optimiser state's copies of the parameters are found with ``optax.tree_map_params``.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Optional, Union

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from deepcore.layers.logical import WILDCARD, activation_rules, is_names, logical_axes, spec_for

RULES = [("batch", ("data", "fsdp")), ("layers", None), ("embed", "fsdp"), ("mlp", "tensor"), ("heads", "tensor"),
         ("qkv", "tensor"), ("kv", "tensor"), ("vocab", "tensor"), ("head_dim", None), ("length", None),
         ("max_len", None), ("norm", None), ("kernel", None), ("conv_in", None), ("conv_out", ("tensor", "fsdp")),
         ("dense_in", "fsdp"), ("dense_out", "tensor"), ("patch", None), ("cls", None), ("classes", None),
         ("rnn_in", "fsdp"), ("hidden", "fsdp"), ("gates", None)]
RULE_SETS = {"default": RULES, "replicated": [("batch", "data"), (WILDCARD, None)],
             "fsdp": [("batch", "data"), (WILDCARD, "data")]}

Rules = Union[str, list]


def rules_for(rules: Rules) -> tuple:
    """``(rule list, strict)`` for a user list (strict: every rule must name a logical axis of the parameters
    and a mesh axis of the mesh) or a text ``"NAME[,logical=axis[+axis]...]"``: a set of :data:`RULE_SETS`
    (rules for names a model lacks are fine) after overrides, e.g. ``"default,vocab=,length=tensor"``
    (``vocab`` whole, sequence-sharded activations)."""
    if not isinstance(rules, str):
        return [tuple(r) for r in rules], True
    name, *overrides = [part.strip() for part in rules.split(",")]
    if name not in RULE_SETS or any("=" not in o for o in overrides):
        raise ValueError(f"rules: expected a list of (logical, mesh axes) or one of {sorted(RULE_SETS)} followed by "
                         f"',logical=axis[+axis]' overrides, got {rules!r}")
    extra = [(k, tuple(a for a in v.split("+") if a) or None) for k, v in (o.split("=", 1) for o in overrides)]
    return extra + RULE_SETS[name], False


def parse_mesh(text: str) -> dict:
    """``"data=2,tensor=4"`` -> ``{"data": 2, "tensor": 4}`` (a bare number ``"8"`` is ``{"data": 8}``)."""
    if text.strip().isdigit():
        return {"data": int(text)}
    try:
        return {k.strip(): int(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise ValueError(f"--mesh: expected name=size[,name=size...], got {text!r}") from None


def make_mesh(shape: Union[dict, str], devices=None) -> Mesh:
    """A mesh with axes ``shape`` (``{"data": 2, "tensor": 4}`` or its text) over ``devices`` (default: all)."""
    shape = parse_mesh(shape) if isinstance(shape, str) else dict(shape)
    devices = jax.devices() if devices is None else list(devices)
    if math.prod(shape.values()) != len(devices):
        raise ValueError(f"mesh {shape}: expected axis sizes whose product is the {len(devices)} devices, "
                         f"got {math.prod(shape.values())}")
    return Mesh(np.asarray(devices).reshape(tuple(shape.values())), tuple(shape))


def _path(kp) -> str:
    return "params" + "".join(f"/{getattr(k, 'key', getattr(k, 'idx', k))}" for k in kp)


def param_specs(params, mesh: Mesh, rules: Rules, axes=None):
    """A ``PartitionSpec`` per leaf of ``params`` (arrays or shapes) from its logical ``axes`` under ``rules``.

    ``axes`` None names every axis ``"*"`` (for the rule-free sets). An axis no rule covers and a dimension
    that does not divide its mesh axes raise ``ValueError`` naming the parameter path, for every rule set."""
    rule_list, strict = rules_for(rules)
    for name, value in rule_list:
        for a in ((value,) if isinstance(value, str) else tuple(value or ())):
            if strict and a not in mesh.shape:
                raise ValueError(f"rule ({name!r}, {value!r}): mesh axis {a!r} is not one of the mesh's "
                                 f"{tuple(mesh.shape)}")
    if axes is None:
        axes = jax.tree.map(lambda a: (WILDCARD,) * np.ndim(a), params)
    used = set()
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = treedef.flatten_up_to(axes)
    specs = [spec_for(n, np.shape(a), mesh, rule_list, path=_path(kp), used=used)
             for (kp, a), n in zip(flat, names)]
    unused = [r for r in rule_list if strict and r[0] not in used and r[0] not in (WILDCARD, "batch")]
    if unused:
        known = sorted({n for ns in names for n in ns})
        raise ValueError(f"rule {unused[0]!r}: matches no logical axis of the parameters (they have {known})")
    return jax.tree.unflatten(treedef, specs)


def batch_sharding(mesh: Mesh, rules: Rules = "default") -> NamedSharding:
    """The leading (batch) axis split over the mesh axes of the ``"batch"`` rule (replicated without one)."""
    rule_list, _ = rules_for(rules)
    value = next((v for n, v in rule_list if n == "batch"), None)
    axes = tuple(a for a in ((value,) if isinstance(value, str) else tuple(value or ())) if a in mesh.shape)
    return NamedSharding(mesh, P(axes if len(axes) > 1 else (axes[0] if axes else None)))


def state_shardings(state, mesh: Mesh, rules: Rules = "default", *, axes=None, tx=None):
    """A ``TrainState`` of ``NamedSharding``: params (and EMA) by the rules, the optimiser state's parameter
    copies alike (``optax.tree_map_params``; needs ``tx`` unless the state holds none), the rest replicated."""
    whole = NamedSharding(mesh, P())
    params = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs(state.params, mesh, rules, axes))
    if tx is not None:
        opt = optax.tree_map_params(tx, lambda _, s: s, state.opt_state, params, transform_non_params=lambda _: whole,
                                    is_leaf=lambda v: isinstance(v, NamedSharding))
    else:
        leaves = jax.tree.leaves(state.opt_state)
        if any(np.ndim(a) for a in leaves):
            raise ValueError("state_shardings: the optimiser state holds arrays; pass tx= to shard them like params")
        opt = jax.tree.map(lambda _: whole, state.opt_state)
    return state.replace(step=whole, params=params, model_state=jax.tree.map(lambda _: whole, state.model_state),
                         opt_state=opt, key=whole, ema=None if state.ema is None else params)


def step_shardings(state, mesh: Mesh, rules: Rules = "default", *, axes=None, tx=None) -> dict:
    """Keyword arguments for ``train_step`` / ``eval_step``: ``state_sharding`` and ``batch_sharding``."""
    return {"state_sharding": state_shardings(state, mesh, rules, axes=axes, tx=tx),
            "batch_sharding": batch_sharding(mesh, rules)}


def shard_batch(local_batch, batch_sharding: NamedSharding):
    """Global arrays laid out by ``batch_sharding`` from this process's rows of the batch."""
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(batch_sharding, np.asarray(a)), local_batch)


def with_rules(loss_fn, mesh: Mesh, rules: Rules = "default"):
    """``loss_fn`` whose activations are pinned by ``rules`` on ``mesh`` (``constrain`` calls in model code)."""
    rule_list, _ = rules_for(rules)

    def wrapped(*args, **kwargs):
        with activation_rules(mesh, rule_list):
            return loss_fn(*args, **kwargs)

    return wrapped


def per_device_bytes(tree, shardings) -> int:
    """Bytes one device holds of ``tree`` (arrays or shapes) laid out by ``shardings`` (the largest shard)."""
    total = 0
    for a, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings, is_leaf=lambda v: isinstance(v, NamedSharding))):
        total += math.prod(s.shard_shape(np.shape(a))) * np.dtype(a.dtype).itemsize
    return total


__all__ = ["RULES", "RULE_SETS", "rules_for", "parse_mesh", "make_mesh", "logical_axes", "is_names", "param_specs",
           "batch_sharding", "state_shardings", "step_shardings", "shard_batch", "with_rules", "per_device_bytes"]


def plan(mesh_text: Optional[str], rules: Rules, devices, model, spec, tx, state):
    """``(mesh, step_shardings, wrap_loss, put_batch)`` for a training script: on ``mesh_text`` (e.g.
    ``"data=2,tensor=4"``) with ``rules``, or without one data-parallel over ``devices`` with the parameters
    replicated (:mod:`deepcore.train.parallel`, ``wrap_loss`` the identity). A rule set that does not fit the
    model or the mesh raises ``ValueError`` naming the parameter path."""
    from deepcore.train import parallel

    if mesh_text is None:
        mesh = parallel.make_mesh(devices)
        return mesh, parallel.step_shardings(state, mesh), lambda f: f, partial(parallel.shard_batch, mesh=mesh)
    mesh = make_mesh(mesh_text, devices)
    kw = step_shardings(state, mesh, rules, axes=logical_axes(model, spec), tx=tx)
    return mesh, kw, lambda f: with_rules(f, mesh, rules), partial(shard_batch, batch_sharding=kw["batch_sharding"])
