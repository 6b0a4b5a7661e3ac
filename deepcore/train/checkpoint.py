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


class Checkpointer:
    """``Checkpointer(dir, keep=3)``: ``save(step, state, meta)``, ``latest_step()``, ``restore(template, step)``.

    Saves are asynchronous (the arrays are copied to host before ``save`` returns, then written in the
    background); ``wait()`` blocks until the last save is on disk, ``close()`` waits and releases.
    """

    def __init__(self, directory: str, *, keep: Optional[int] = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=async_save)
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

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
