"""Damaged checkpoints: say which step is damaged and why in one line, resume from the newest intact one.

A checkpoint is damaged when it does not restore (an array file truncated or deleted, metadata or the
array manifest missing or emptied, ...) or when the restored state fails the caller's check (e.g. it
holds NaNs). :func:`restore_intact` walks the steps from the newest down and restores the first intact
one; only then are the newer, damaged ones moved (never deleted) to ``DIR-damaged/<step>``, each
reported in one line. When no checkpoint is intact nothing is moved and :class:`DamagedCheckpoints`
lists every step's reason (a restore that fails for every step is more likely a wrong setup than
damage, so nothing is touched).
"""
from __future__ import annotations

import os
import re
from typing import Callable, Optional

import jax

from deepcore.train.guard import describe

# files every orbax checkpoint of a Checkpointer holds (relative to DIR/<step>)
REQUIRED = ("state/_METADATA", "state/manifest.ocdbt", "meta/metadata")
_HINTS = {"OUT_OF_RANGE": "is truncated, shorter than the manifest says", "NOT_FOUND": "is missing",
          "DATA_LOSS": "is corrupt"}


class DamagedCheckpoints(RuntimeError):
    """No checkpoint in a directory restores intact; the message gives each step's reason."""


def one_line(exc: BaseException, root: str) -> str:
    """A short reason for a failed read or write: ``state/d/1f2e... is truncated, shorter than the manifest
    says`` for tensorstore's errors, else the exception's type and first 200 characters on one line."""
    text = " ".join(str(exc).split()).split(" [tensorstore_spec")[0]
    code = re.match(r"([A-Z_]{4,}): ", text)
    files = re.findall(r'local file "([^"]+)"', text)
    if code and files:
        return f"{os.path.relpath(files[-1], root)} {_HINTS.get(code.group(1), code.group(1).lower())}"
    return f"{type(exc).__name__}: {text[:200]}"


def reason(step_dir: str, exc: BaseException) -> str:
    """Why the checkpoint in ``step_dir`` did not restore: a missing or empty required file, else the error."""
    for rel in REQUIRED:
        path = os.path.join(step_dir, rel)
        if not os.path.exists(path):
            return f"{rel} is missing"
        if os.path.getsize(path) == 0:
            return f"{rel} is empty"
    return one_line(exc, step_dir)


def set_aside(directory: str, step: int) -> str:
    """Move ``directory/<step>`` to ``directory-damaged/<step>`` (``<step>.1``, ... when taken); return the new path."""
    target_dir = directory.rstrip(os.sep) + "-damaged"
    target, n = os.path.join(target_dir, str(step)), 0
    while os.path.exists(target):
        n += 1
        target = os.path.join(target_dir, f"{step}.{n}")
    if jax.process_index() == 0:
        os.makedirs(target_dir, exist_ok=True)
        os.rename(os.path.join(directory, str(step)), target)
    return target


def restore_intact(ckpt, template, check: Optional[Callable] = None, say: Callable = print):
    """``(state, meta)`` of the newest intact checkpoint of ``ckpt`` (see the module docstring)."""
    from deepcore.train.checkpoint import _NOISE, CheckpointMismatch

    failures = []
    for step in sorted(ckpt.all_steps(), reverse=True):
        _NOISE.quiet += 1  # orbax's warnings about the damaged files: the reason is reported below, in one line
        try:
            state, meta = ckpt.restore(template, step)
        except CheckpointMismatch:
            raise
        except Exception as e:  # noqa: BLE001: any failure to read back is damage; the reason is reported
            failures.append((step, reason(os.path.join(ckpt.directory, str(step)), e)))
            continue
        finally:
            _NOISE.quiet -= 1
        bad = check(state) if check is not None else []
        if bad:
            failures.append((step, f"non-finite values in {describe(bad)}"))
            continue
        for s, why in failures:
            where = set_aside(ckpt.directory, s)
            say(f"checkpoint step {s} in {ckpt.directory} is damaged ({why}); moved to {where}; "
                f"resuming from step {step}")
        if failures:
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils
                multihost_utils.sync_global_devices("deepcore_damaged_checkpoints_moved")
            ckpt.reload()
        return state, meta
    if failures:
        raise DamagedCheckpoints(f"no intact checkpoint in {ckpt.directory} (nothing was moved): "
                                 + "; ".join(f"step {s}: {why}" for s, why in failures))
    raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
