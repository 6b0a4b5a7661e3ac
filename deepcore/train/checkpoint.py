"""Checkpoints through orbax: periodic, keep the last N, atomic, restorable onto another device layout.

A checkpoint is ``DIR/<step>/`` holding the :class:`TrainState` (``state``) and a small JSON dict
(``meta``: early-stopping counters, anything the loop needs to continue exactly). Orbax writes into a
temporary directory and renames it when complete, so a process killed during a save (even with
SIGKILL) leaves the previous checkpoint as the newest restorable one; unfinished temporaries are
ignored and cleaned up on the next start.

Faults: a save that cannot be written (a full disk, ...) raises :class:`CheckpointWriteError`, one line
naming the directory and, for a full disk, the space a checkpoint needs; its unfinished temporary is
removed and the earlier checkpoints are untouched. :meth:`Checkpointer.restore_intact` restores the
newest checkpoint that reads back whole (and passes a check, e.g. all values finite), moving newer
damaged ones aside to ``DIR-damaged/<step>`` and saying so (:mod:`deepcore.train.damage`).
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import sys
from typing import Callable, Optional

import jax
import orbax.checkpoint as ocp

from deepcore.train import damage


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


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (e.g. a full disk); the earlier checkpoints are intact."""


def _disk_bytes(path: str) -> int:
    """Bytes a directory occupies on its filesystem (allocated blocks, so a tmpfs's pages count)."""
    return sum(os.stat(os.path.join(root, f)).st_blocks * 512 for root, _, files in os.walk(path) for f in files)


def _size(n: float) -> str:
    """``"88 KiB"``, ``"1.4 MiB"``, ``"12.0 GiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.0f} KiB"


def _no_space(exc: BaseException) -> bool:
    while exc is not None:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _OrbaxNoise(logging.Filter):
    """Drops orbax's own error logs (each with a traceback) of a failed save, which reaches the caller as one
    :class:`CheckpointWriteError` line, and, while ``quiet`` > 0 (restore attempts), its warnings too."""

    quiet = 0

    def filter(self, record: logging.LogRecord) -> bool:
        from_orbax = f"{os.sep}orbax{os.sep}" in record.pathname
        return not (from_orbax and (record.levelno >= logging.ERROR or
                                    (self.quiet and record.levelno >= logging.WARNING)))


_NOISE = _OrbaxNoise()


class _StrayReads(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" records of the checkpoint store's own errors (their
    message carries a ``[tensorstore_spec=...]``). A restore that fails leaves its sibling reads' errors
    unretrieved (orbax raises the first), and when the garbage collector meets them, each is logged with a
    traceback; the failure itself was reported in one line. Other exceptions pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and "[tensorstore_spec=" in str(exc))


_STRAY = _StrayReads()


def _quiet_orbax() -> None:
    """Install (once) the log filters above and an unraisable-exception hook that drops the "Event loop is
    closed" errors tensorstore's callbacks raise after a failed read or write (dozens of tracebacks that
    would bury the one-line report); every other unraisable exception goes to the previous hook."""
    logger = logging.getLogger("absl")
    if _NOISE in logger.filters:
        return
    logger.addFilter(_NOISE)
    logging.getLogger("asyncio").addFilter(_STRAY)
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook


class Checkpointer:
    """``Checkpointer(dir, keep=3)``: ``save(step, state, meta)``, ``latest_step()``, ``restore(template, step)``
    (which raises :class:`CheckpointMismatch`, naming the differing arrays, when the shapes do not fit),
    ``restore_intact(template, check)`` (the newest checkpoint that is not damaged).

    Saves are asynchronous (the arrays are copied to host before ``save`` returns, then written in the
    background); ``wait()`` blocks until the last save is on disk, ``close()`` waits and releases. A save
    that fails to write raises :class:`CheckpointWriteError` from ``save`` (of this step, or of the next
    one when the background write failed), ``wait`` or ``close``.
    """

    def __init__(self, directory: str, *, keep: Optional[int] = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=async_save)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
        _quiet_orbax()
        self._writing: Optional[tuple] = None  # (step, bytes of its arrays) of the save last started
        self._failed = False

    def save(self, step: int, state, meta: Optional[dict] = None, *, force: bool = True) -> bool:
        self._finish()  # a failed background write of the previous save is reported as that step's
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {}))
        self._writing = (int(step), sum(getattr(a, "nbytes", 0) for a in jax.tree.leaves(state)))
        try:
            return self._mgr.save(int(step), args=args, force=force)
        except Exception as e:  # noqa: BLE001: any failure to write is reported as one line, then re-raised
            raise self._write_failed(e) from e

    def _finish(self) -> None:
        if self._failed:
            raise CheckpointWriteError(f"{self.directory}: an earlier checkpoint save failed; no more saves")
        try:
            self._mgr.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            raise self._write_failed(e) from e

    def _write_failed(self, exc: BaseException) -> CheckpointWriteError:
        """Remove the unfinished temporaries, then one line: where, why, how much space, what is intact."""
        self._failed = True
        if jax.process_index() == 0:  # the primary process owns the directory, as in orbax's own cleanup
            for _ in range(50):   # tensorstore's writer threads may still add files for a moment after the error
                left = ocp.path.step.tmp_checkpoints(self.directory)
                if not left:
                    break
                for name in left:
                    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
                time.sleep(0.05)
        step, nbytes = self._writing or (None, 0)
        self._mgr.reload()
        last = self._mgr.latest_step()
        if last is not None:
            nbytes = max(nbytes, _disk_bytes(os.path.join(self.directory, str(last))))
        if _no_space(exc):
            why = (f"no space left on device (a checkpoint needs about {_size(nbytes)}, "
                   f"{_size(shutil.disk_usage(self.directory).free)} free)")
        else:
            why = damage.one_line(exc, self.directory)
        kept = f"checkpoints up to step {last} are intact" if last is not None else "no earlier checkpoint"
        return CheckpointWriteError(f"the checkpoint of step {step} could not be written to {self.directory}: {why}; "
                                    f"its unfinished files were removed; {kept}")

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

    def restore_intact(self, template, check: Optional[Callable] = None, say: Callable = print):
        """``(state, meta)`` of the newest checkpoint that restores and for which ``check(state)`` (e.g.
        :func:`deepcore.train.guard.nonfinite_paths`) returns nothing; each newer, damaged one is moved to
        ``DIR-damaged/<step>`` and reported with ``say`` in one line. Raises :class:`CheckpointMismatch` for
        another model's checkpoint, and :class:`damage.DamagedCheckpoints` (moving nothing) when none is intact."""
        return damage.restore_intact(self, template, check, say)

    def reload(self) -> None:
        """Re-read the step list from disk (after directories were moved)."""
        self._mgr.reload()

    def wait(self) -> None:
        self._finish()

    def close(self) -> None:
        try:
            if not self._failed:
                self._finish()
        finally:
            try:
                self._mgr.close()
            except Exception:  # noqa: BLE001: a failed save was already reported as one line
                if not self._failed:
                    raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
