"""Progress output of the training loop: a redrawn one-line bar on a terminal, plain log lines otherwise.

Steps/s and examples/s count from :meth:`Progress.restart` (the loop calls it once the first, compiling step
has finished), so compilation does not dilute the throughput shown and logged."""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, Optional

import numpy as np


def shown(metrics: dict) -> str:
    """``"loss 0.1234 accuracy 0.9"``; a population's per-member lists show their mean."""
    return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} [mean {np.mean(v):.4g}]"
                    for k, v in metrics.items() if isinstance(v, (float, list)))


def fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """A one-line bar on a terminal (redrawn at most 5 times a second), plain log lines otherwise. ``total``
    None: no bar, no step total; ``start``: the step training starts from; ``stream``: default stdout, ``tty``:
    default ``stream.isatty()``; ``examples_per_step``: for examples/s; ``time_left()``: seconds of a time
    budget, the ETA when that comes sooner."""

    def __init__(self, total: Optional[int], start: int = 0, stream=None, tty: Optional[bool] = None,
                 examples_per_step: Optional[int] = None, time_left: Optional[Callable[[], float]] = None):
        stream = sys.stdout if stream is None else stream
        self.total, self.stream, self.time_left = total, stream, time_left
        self.tty = stream.isatty() if tty is None else tty
        self.examples_per_step = examples_per_step
        self.t0, self.s0, self.last_draw = time.perf_counter(), start, 0.0

    def restart(self, step: int) -> None:
        """Measure throughput from now and ``step`` on (call it after the first, compiling step)."""
        self.t0, self.s0 = time.perf_counter(), step

    def rate(self, step: int):
        dt = time.perf_counter() - self.t0
        steps_s = (step - self.s0) / dt if dt > 0 and step > self.s0 else float("nan")
        eta = float("inf")
        if self.total is not None and steps_s == steps_s and steps_s > 0:
            eta = (self.total - step) / steps_s
        if self.time_left is not None:
            eta = min(eta, max(0.0, self.time_left()))
        return steps_s, eta

    def text(self, step: int, metrics: dict) -> str:
        steps_s, eta = self.rate(step)
        ex = f" {steps_s * self.examples_per_step:,.0f} ex/s" if self.examples_per_step and steps_s == steps_s else ""
        values = shown(metrics)
        of = f"/{self.total}" if self.total is not None else ""
        return f"step {step}{of}{ex} ETA {fmt_time(eta)} {values}".rstrip()

    def update(self, step: int, metrics: dict, force: bool = False):
        if not self.tty:
            return
        now = time.perf_counter()
        if force or now - self.last_draw > 0.2:
            bar = ""
            if self.total is not None:
                frac = step / max(self.total, 1)
                bar = "[" + "#" * int(20 * frac) + "." * (20 - int(20 * frac)) + "] "
            self.stream.write(f"\r{bar}{self.text(step, metrics)}\x1b[K")
            self.stream.flush()
            self.last_draw = now

    def log(self, step: int, metrics: dict):
        if not self.tty:
            self.stream.write(self.text(step, metrics) + "\n")
            self.stream.flush()

    def message(self, text: str):
        self.stream.write(("\n" if self.tty else "") + text + "\n")
        self.stream.flush()
