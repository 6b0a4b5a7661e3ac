"""deepcore parameters as safetensors, and the inference function as serialised StableHLO (``jax.export``).

Tensor names are the parameter paths joined by dots: ``params["blocks"]["attn"]["qkv"]["w"]`` is
``"blocks.attn.qkv.w"``, list entries by index (``"blocks.0.mlp.fc.b"``); shapes and dtypes are deepcore's own
(a scanned stack's tensors keep their leading layer axis). :func:`save` then :func:`load` is bit-exact.

:func:`load` reads lazily (``safetensors.safe_open``): with ``shardings`` each device reads only its own slice of
each tensor (``jax.make_array_from_callback``), so a checkpoint larger than one device's memory loads. A missing,
extra or wrongly shaped tensor is one line naming it.
"""
import os
from typing import Callable, Optional

import jax
import numpy as np

from deepcore.tree import leaf_paths


def tensor_name(path: str) -> str:
    """A parameter path ``"blocks/attn/qkv/w"`` -> its tensor name ``"blocks.attn.qkv.w"``."""
    return path.replace("/", ".")


def to_tensors(params) -> dict:
    """``{tensor name: numpy array}`` of every leaf of ``params`` (gathered to the host)."""
    return {tensor_name(p): np.asarray(v) for p, v in zip(leaf_paths(params), jax.tree.leaves(params))}


def save(params, path: str, metadata: Optional[dict] = None) -> None:
    """Write ``params`` to the safetensors file ``path`` (``metadata``: string key/values kept in the header)."""
    from safetensors.numpy import save_file

    save_file(to_tensors(params), path, metadata={"format": "deepcore", **(metadata or {})})


def _nest(flat: dict):
    """``{"a.b.0.c": x}`` -> nested dicts, dicts keyed ``"0".."n-1"`` becoming lists."""
    root: dict = {}
    for name, value in flat.items():
        node, keys = root, name.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    def lists(node):
        if not isinstance(node, dict):
            return node
        node = {k: lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
            return [node[str(i)] for i in range(len(node))]
        return node

    return lists(root)


def check_names(have: dict, want: dict, source: str) -> None:
    """``have``/``want``: ``{name: shape}``. One line naming the first missing, extra or misshapen tensor."""
    missing = [n for n in want if n not in have]
    if missing:
        raise ValueError(f"{source}: missing tensor {missing[0]!r} (shape {tuple(want[missing[0]])})"
                         + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    extra = [n for n in have if n not in want]
    if extra:
        raise ValueError(f"{source}: unexpected tensor {extra[0]!r} (shape {tuple(have[extra[0]])})"
                         + (f" and {len(extra) - 1} more" if len(extra) > 1 else ""))
    for n, shape in want.items():
        if tuple(have[n]) != tuple(shape):
            raise ValueError(f"{source}: tensor {n!r}: expected shape {tuple(shape)}, got {tuple(have[n])}")


def place(read: Callable, shape, dtype, sharding=None):
    """A ``jax.Array`` from ``read(index) -> numpy`` (``index`` a tuple of slices; ``None``: everything): whole
    onto the default device, or with ``sharding`` each device reading only its slice."""
    if sharding is None:
        return jax.device_put(np.asarray(read(None), dtype))
    return jax.make_array_from_callback(tuple(shape), sharding, lambda idx: np.asarray(read(idx), dtype))


def load(path: str, like=None, shardings=None):
    """Read a file written by :func:`save`. ``like``: a params tree (arrays or ``ShapeDtypeStruct``, e.g.
    ``jax.eval_shape`` of an init) giving structure, shapes and dtypes to check against; without it the tree is
    rebuilt from the names. ``shardings``: one ``Sharding`` or a tree of them matching ``like`` (e.g. from
    ``deepcore.train.parallel.state_sharding``), each tensor read slice by slice onto its devices."""
    from safetensors import safe_open

    if not os.path.exists(path):
        raise FileNotFoundError(f"safetensors: no file {path!r}")
    with safe_open(path, framework="numpy") as f:
        have = {n: f.get_slice(n).get_shape() for n in f.keys()}
        if like is None:
            return _nest({n: jax.device_put(f.get_tensor(n)) for n in have})
        paths, leaves = leaf_paths(like), jax.tree.leaves(like)
        want = {tensor_name(p): v.shape for p, v in zip(paths, leaves)}
        check_names(have, want, path)
        if shardings is None or isinstance(shardings, jax.sharding.Sharding):
            shards = [shardings] * len(leaves)
        else:
            shards = jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding))
        out = [place(lambda idx, n=tensor_name(p): f.get_tensor(n) if not idx else f.get_slice(n)[idx],
                     v.shape, v.dtype, s)
               for p, v, s in zip(paths, leaves, shards)]
    return jax.tree.unflatten(jax.tree.structure(like), out)


# ----------------------------------------------------------------------------- jax.export of the inference function

def export_apply(apply: Callable, params, x_spec, path: Optional[str] = None, *, state=None,
                 polymorphic_batch: bool = False) -> bytes:
    """Serialise ``x -> apply(params, state, x)[0]`` with ``jax.export`` (StableHLO; parameters are an argument,
    ``(params, x)``, so the weights travel separately as safetensors). ``polymorphic_batch``: the leading axis
    of ``x`` is symbolic (any batch size). Written to ``path`` if given; returns the bytes."""
    state = {} if state is None else state
    p_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    shape = tuple(x_spec.shape)
    if polymorphic_batch:
        shape = jax.export.symbolic_shape(", ".join(["b"] + [str(d) for d in shape[1:]]))
    fn = jax.jit(lambda p, x: apply(p, state, x)[0])
    exp = jax.export.export(fn)(p_spec, jax.ShapeDtypeStruct(shape, x_spec.dtype))
    blob = exp.serialize()
    if path is not None:
        with open(path, "wb") as f:
            f.write(blob)
    return blob


def load_exported(source) -> Callable:
    """``(params, x) -> y`` from :func:`export_apply`'s bytes or file."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            source = f.read()
    return jax.export.deserialize(bytearray(source)).call


__all__ = ["tensor_name", "to_tensors", "save", "load", "check_names", "place", "export_apply", "load_exported"]
