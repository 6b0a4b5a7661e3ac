"""A progress line on stderr for checks that run longer than a couple of seconds.

``gradcheck NAME: fast rows 96/160 (params/conv/w), 4.1s, about 2.5s left``: the mode, the leaf being
evaluated, rows (or leaves) done out of the total, the time so far and an estimate of what is left.
Nothing is printed for a check that finishes within ``after`` seconds.
"""
from __future__ import annotations

import sys
import time


class Progress:
    """Throttled progress lines: at most one every ``every`` seconds, the first after ``after`` seconds."""

    def __init__(self, name: str, total: int, *, stream=None, after: float = 2.0, every: float = 2.0):
        self.name, self.total, self.done = name, max(1, total), 0
        self.stream = stream if stream is not None else sys.stderr
        self.after, self.every = after, every
        self.start = self.last = time.perf_counter()
        self.printed = False
        self.width = 1

    def phase(self, mode: str, done: int, width: int):
        """Work units ``[done, done + width)`` of ``total`` are mode ``mode``'s (one unit per leaf)."""
        self.mode, self.done, self.width = mode, done, max(1, width)
        self._show(f"{mode} {done}/{self.total} leaf checks", done)

    def rows(self, mode: str, leaf: str, i: int, m: int):
        self._show(f"{mode} rows {i}/{m} ({leaf})", self.done + self.width * i / max(1, m))

    def note(self, text: str):
        self._show(text, self.done)

    def _show(self, what: str, done: float):
        now = time.perf_counter()
        elapsed = now - self.start
        if elapsed < self.after or (self.printed and now - self.last < self.every):
            return
        eta = f", about {elapsed * (self.total - done) / done:.0f}s left" if done > 0 else ""
        print(f"gradcheck {self.name}: {what}, {elapsed:.1f}s{eta}", file=self.stream, flush=True)
        self.printed, self.last = True, now

    def close(self):
        if self.printed:
            print(f"gradcheck {self.name}: done in {time.perf_counter() - self.start:.1f}s", file=self.stream,
                  flush=True)
