"""Opening a run's output folder: the run lock, the checkpointer, and the state to continue from."""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional

from deepcore.train.checkpoint import Checkpointer
from deepcore.train.guard import nonfinite_paths
from deepcore.train.runlock import RunLock


def open_run(stack: contextlib.ExitStack, out_dir: Optional[str], state, *, checkpoint_every: Optional[int],
             keep: int, resume: bool, main: bool, say: Callable[[str], None]) -> tuple:
    """``(checkpointer or None, state, saved meta, notices)``. Holds ``out_dir/run.lock`` (process 0, ``main``)
    and ``out_dir/checkpoints`` open on ``stack``; with ``resume`` restores the newest intact checkpoint
    (damaged newer ones are set aside, one notice line each); without, existing checkpoints are an error."""
    if out_dir and main:
        lock = stack.enter_context(RunLock(out_dir))
        if lock.stale:
            say(f"{out_dir}: taking over the lock of pid {lock.stale.get('pid')} on host "
                f"{lock.stale.get('host')}, which is no longer running")
    if not (out_dir and checkpoint_every):
        return None, state, {}, []
    ckpt = stack.enter_context(Checkpointer(os.path.join(out_dir, "checkpoints"), keep=keep))
    if ckpt.latest_step() is None:
        return ckpt, state, {}, []
    if not resume:
        raise FileExistsError(f"{ckpt.directory} already holds checkpoints (newest: step {ckpt.latest_step()}); "
                              f"resume from them or choose a new output directory")
    notices = []
    state, saved = ckpt.restore_intact(state, check=nonfinite_paths, say=notices.append)
    return ckpt, state, saved, notices
