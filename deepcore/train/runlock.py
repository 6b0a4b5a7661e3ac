"""One run per output folder: ``DIR/run.lock`` holds the owner's pid and host while a run writes there.

::

    with RunLock("runs/mlp"):      # RunLocked if another live process holds it
        fit(...)

Mutual exclusion is an exclusive ``fcntl.flock`` on the lock file, which the kernel drops when the
owner exits in any way (SIGKILL included), so a lock left by a killed run is recognised as stale
(``stale`` names its pid and host) and taken over; the file's JSON only tells the refused run who
owns the folder. The lock is released and the file removed on exit from the ``with`` block. A
process may take the same folder's lock again while holding it (``fit`` inside an experiment script
that already holds it). ``flock`` across machines needs a filesystem that supports it (not every NFS).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from typing import Optional

LOCK_NAME = "run.lock"
_held: dict = {}  # realpath of the lock file -> [fd, count] for locks this process holds


class RunLocked(RuntimeError):
    """The output folder is in use by another live run."""


def _owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}


class RunLock:
    """``RunLock(directory)``: an exclusive lock on ``directory/run.lock`` (see the module docstring).
    After ``acquire``, ``stale`` is the dict (pid, host, started) of a killed owner taken over, else None."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.stale: Optional[dict] = None
        self._key: Optional[str] = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.directory, exist_ok=True)
        key = os.path.realpath(self.path)
        if key in _held:
            _held[key][1] += 1
            self._key = key
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(fd)
                os.close(fd)
                raise RunLocked(f"{self.directory} is in use by pid {owner.get('pid', '?')} on host "
                                f"{owner.get('host', '?')} (since {owner.get('started', '?')}; lock file "
                                f"{self.path}); wait for that run to end or choose another output folder") from None
            try:  # the file may have been removed (released) between our open and our flock: retry on the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _owner(fd)
        self.stale = previous or None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        os.fsync(fd)
        _held[key] = [fd, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        entry = _held[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self._key]
            os.remove(self.path)  # while still locked, so no other run locks the file being removed
            os.close(entry[0])
        self._key = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
