"""Checkpoints through orbax: periodic, keep the last N, atomic, restorable onto another device layout.

A checkpoint is ``DIR/<step>/`` holding the :class:`TrainState` (``state``) and a small JSON dict
(``meta``: early-stopping counters, anything the loop needs to continue exactly). Orbax writes into a
temporary directory and renames it when complete, so a process killed during a save (even with
SIGKILL) leaves the previous checkpoint as the newest restorable one; unfinished temporaries are
ignored and cleaned up on the next start.
"""
from __future__ import annotations

import os
from typing import Optional

import jax
import orbax.checkpoint as ocp


def abstract_like(state):
    """Shape/dtype/sharding of every leaf of ``state``: the restore target (so a state saved from
    8 devices restores onto 1 by passing a template placed on 1 device)."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)),
                        state)


class CheckpointMismatch(ValueError):
    """A checkpoint whose arrays do not fit the state it is restored into (another model or config)."""


def _shapes(tree) -> dict:
    """``{'params/dense_0/w': (shape, dtype)}`` for every array leaf (states or orbax metadata alike)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="/"): (tuple(leaf.shape), str(leaf.dtype))
            for path, leaf in flat if hasattr(leaf, "shape")}


def mismatches(saved: dict, wanted: dict, limit: int = 3) -> list:
    """Human-readable differences between two :func:`_shapes` maps (at most ``limit``, then a count)."""
    out = [f"{k}: saved {saved[k][0]} {saved[k][1]}, expected {wanted[k][0]} {wanted[k][1]}"
           for k in saved.keys() & wanted.keys() if saved[k] != wanted[k]]
    out += [f"{k}: in the checkpoint, not in this state" for k in saved.keys() - wanted.keys()]
    out += [f"{k}: in this state, not in the checkpoint" for k in wanted.keys() - saved.keys()]
    out.sort(key=lambda line: (not line.startswith("params/"), line))   # the parameters first
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


class Checkpointer:
    """``Checkpointer(dir, keep=3)``: ``save(step, state, meta)``, ``latest_step()``, ``restore(template, step)``
    (which raises :class:`CheckpointMismatch`, naming the differing arrays, when the shapes do not fit).

    Saves are asynchronous (the arrays are copied to host before ``save`` returns, then written in the
    background); ``wait()`` blocks until the last save is on disk, ``close()`` waits and releases.
    """

    def __init__(self, directory: str, *, keep: Optional[int] = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=async_save)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def save(self, step: int, state, meta: Optional[dict] = None, *, force: bool = True) -> bool:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {}))
        return self._mgr.save(int(step), args=args, force=force)

    def latest_step(self) -> Optional[int]:
        return self._mgr.latest_step()

    def all_steps(self) -> list:
        return list(self._mgr.all_steps())

    def restore(self, template, step: Optional[int] = None):
        """``(state, meta)`` at ``step`` (default: newest), laid out like ``template`` (a state or its
        :func:`abstract_like`)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        saved = _shapes(self._mgr.item_metadata(step)["state"].tree)
        diff = mismatches(saved, _shapes(template))
        if diff:
            raise CheckpointMismatch(f"the checkpoint at step {step} in {self.directory} does not fit this state "
                                     f"(another model or config?): " + "; ".join(diff))
        target = jax.tree.map(lambda a: a if isinstance(a, jax.ShapeDtypeStruct) else
                              jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)), template)
        out = self._mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                              meta=ocp.args.JsonRestore()))
        return out["state"], dict(out["meta"] or {})

    def wait(self) -> None:
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
