"""Low-rank adapters (LoRA, Hu et al., 2021) on any dense projection of any deepcore model.

A projection weight ``w: (..., d_in, d_out)`` whose path matches one of the patterns (globs as in
:func:`deepcore.tree.path_mask`; leading axes such as a scanned stack's layer axis are kept) gets
``a: (..., d_in, r)`` drawn from N(0, 1/d_in) and ``b: (..., r, d_out)`` zeros, and the model runs with::

    w' = w + scale * a @ b                  # at init b = 0, so the wrapped model equals the base one

The trained tree is ``{"base": params, "lora": adapters}``; the adapters mirror the base paths
(``lora["blocks"]["attn"]["qkv"]["w"] == {"a", "b"}``), so checkpoints, ``vmap``-ed populations and sharded
layouts (``deepcore.train.parallel``) treat them like any parameters. :func:`optimizer` trains only the
adapters through ``optax.partition`` (:func:`deepcore.tree.freeze`): the base weights hold no optimiser state.

The adapted weights are formed before the wrapped model runs (so it works unchanged on every model and layout;
the weight gradient ``x^T dy`` of each adapted projection is formed once per step, as in full fine-tuning).
``dropout`` therefore acts on the adapter's weights, not on activations: in train mode each input row of ``a``
(one input feature of the low-rank path) is dropped with probability ``dropout`` per step and per layer, and
the rest scaled by ``1/(1 - dropout)``; the paper drops input features per example.
"""
from dataclasses import dataclass
from typing import Tuple

import jax
import jax.numpy as jnp
import optax

from deepcore.core import Layer, layer
from deepcore.tree import _matcher, flatten_dict, freeze, get_path, leaf_paths, param_count, set_path, unflatten_dict

TRANSFORMER = ("*attn/qkv/w", "*attn/out/w", "*mlp/fc/w", "*mlp/proj/w")   # every projection of a block
ATTENTION = ("*attn/qkv/w", "*attn/out/w")
QKV = ("*attn/qkv/w",)   # the fused query/key/value projection only


@dataclass(frozen=True)
class LoRAConfig:
    """``patterns``: globs over weight paths (default: every projection of the transformer blocks);
    ``rank`` r; ``scale`` multiplies ``a @ b`` (the paper's alpha / r); ``dropout`` see the module doc."""

    patterns: Tuple[str, ...] = TRANSFORMER
    rank: int = 8
    scale: float = 1.0
    dropout: float = 0.0

    def __post_init__(self):
        if isinstance(self.patterns, str):
            object.__setattr__(self, "patterns", (self.patterns,))
        if self.rank < 1:
            raise ValueError(f"lora: rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora: dropout must be in [0, 1), got {self.dropout}")


def targets(params, cfg: LoRAConfig) -> list:
    """Paths of the weights that get adapters: leaves of rank >= 2 matching a pattern. A pattern that matches
    no such weight is an error naming it (a typo would otherwise train nothing)."""
    pats, match = _matcher(cfg.patterns, False)
    paths, hits = [], [False] * len(pats)
    for path, leaf in zip(leaf_paths(params), jax.tree.leaves(params)):
        m = match(path)
        if any(m) and jnp.ndim(leaf) >= 2:
            paths.append(path)
            hits = [h or x for h, x in zip(hits, m)]
    unused = [p for p, h in zip(pats, hits) if not h]
    if unused:
        raise ValueError(f"lora: patterns {unused} match no weight of rank >= 2; weights are "
                         f"{[p for p, v in zip(leaf_paths(params), jax.tree.leaves(params)) if jnp.ndim(v) >= 2]}")
    return paths


def init_adapters(key, params, cfg: LoRAConfig) -> dict:
    """Adapters for every target of ``params``: ``{path...: {"a": (..., d_in, r), "b": (..., r, d_out)}}``."""
    flat = {}
    for i, path in enumerate(targets(params, cfg)):
        w = get_path(params, path)
        *lead, d_in, d_out = w.shape
        a = jax.random.normal(jax.random.fold_in(key, i), (*lead, d_in, cfg.rank), w.dtype) / jnp.sqrt(d_in)
        flat[path] = {"a": a.astype(w.dtype), "b": jnp.zeros((*lead, cfg.rank, d_out), w.dtype)}
    return unflatten_dict({f"{p}/{k}": v for p, ab in flat.items() for k, v in ab.items()})


def _pairs(adapters) -> dict:
    """``{base path: {"a", "b"}}`` from the nested adapter tree."""
    flat = flatten_dict(adapters)
    return {p[:-2]: {"a": flat[p], "b": flat[p[:-2] + "/b"]} for p in flat if p.endswith("/a")}


def delta(ab, scale: float):
    """``scale * a @ b`` over the leading axes: ``(..., d_in, d_out)``."""
    return (scale * jnp.matmul(ab["a"], ab["b"])).astype(ab["b"].dtype)


def merge(tree, cfg: LoRAConfig, *, key=None, train: bool = False):
    """``{"base", "lora"}`` -> the base params with every adapted ``w`` replaced by ``w + scale * a @ b``
    (with the adapter dropout when ``train`` and ``key`` are given)."""
    params = tree["base"]
    for i, (path, ab) in enumerate(_pairs(tree["lora"]).items()):
        if train and cfg.dropout and key is not None:
            a = ab["a"]
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - cfg.dropout, a.shape[:-1] + (1,))
            ab = {"a": jnp.where(keep, a / (1.0 - cfg.dropout), 0).astype(a.dtype), "b": ab["b"]}
        params = set_path(params, path, get_path(params, path) + delta(ab, cfg.scale))
    return params


def unmerge(params, adapters, cfg: LoRAConfig) -> dict:
    """Inverse of :func:`merge` (eval mode): ``{"base": params - scale * a @ b, "lora": adapters}``."""
    base = params
    for path, ab in _pairs(adapters).items():
        base = set_path(base, path, get_path(base, path) - delta(ab, cfg.scale))
    return {"base": base, "lora": adapters}


def attach(params, key, cfg: LoRAConfig) -> dict:
    """Pretrained ``params`` -> ``{"base": params, "lora": fresh adapters}`` (the same model at first)."""
    return {"base": params, "lora": init_adapters(key, params, cfg)}


def LoRA(model: Layer, cfg: LoRAConfig = LoRAConfig()) -> Layer:
    """``model`` with adapters: params ``{"base", "lora"}``, the same inputs, outputs and state as ``model``.

    ``init`` initialises ``model`` and adds fresh adapters; to adapt pretrained weights use :func:`attach`.
    In train mode with ``dropout``, ``key`` is split between the adapters and ``model``.
    """

    def init(key, spec):
        k_model, k_lora = jax.random.split(key)
        out, params, state = model.init(k_model, spec)
        return out, attach(params, k_lora, cfg), state

    def apply(params, state, x, *, key=None, train=False):
        k_lora = None
        if key is not None and train and cfg.dropout:
            key, k_lora = jax.random.split(key)
        return model.apply(merge(params, cfg, key=k_lora, train=train), state, x, key=key, train=train)

    return layer("lora", init, apply)


def optimizer(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` on the adapters only (``{"base", "lora"}`` trees): base leaves get zero updates and no state."""
    return freeze(tx, "base/*")


def trainable_fraction(tree) -> float:
    """Adapter parameters over base parameters of a ``{"base", "lora"}`` tree."""
    return param_count(tree["lora"]) / param_count(tree["base"])


__all__ = ["LoRAConfig", "TRANSFORMER", "ATTENTION", "QKV", "targets", "init_adapters", "delta", "merge", "unmerge",
           "attach", "LoRA", "optimizer", "trainable_fraction"]
