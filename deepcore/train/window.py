"""The train record of one log window: the mean of the step metrics read since the last record, examples/s,
MFU and device memory where known, and ``data_wait_fraction``: the share of wall time the device sat idle for
want of the next batch. Steps run asynchronously, so a wait that ends while the previous step is still running
costs nothing and is not counted; a wait that ends after it finished is counted whole (an upper bound)."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional

import jax
import numpy as np

from deepcore.train.mfu import utilisation


class Window:
    """Collects host metrics (``add``) and batch-wait time (``batches``) until the next ``record``."""

    def __init__(self):
        self.metrics, self.wait, self.since, self.timed = [], 0.0, time.perf_counter(), False
        self.in_flight = None   # the outputs of the step dispatched last (``dispatched``)

    def add(self, host: dict) -> None:
        self.metrics.append(host)

    @property
    def latest(self) -> Optional[dict]:
        return self.metrics[-1] if self.metrics else None

    def batches(self, host_batches: Iterable, put_batch: Callable) -> Iterator[tuple]:
        """``(host batch, put_batch(host batch))`` pairs, timing the wait for each (and its placing)."""
        it, self.timed = iter(host_batches), True
        while True:
            waited = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            placed = put_batch(batch)
            if self.in_flight is None or _ready(self.in_flight):   # the device may have idled meanwhile
                self.wait += time.perf_counter() - waited
            yield batch, placed

    def dispatched(self, outputs) -> None:
        """Note the outputs of the step just dispatched: a wait for the next batch that ends before they are
        ready overlapped that step's computation."""
        self.in_flight = outputs

    def restart(self) -> None:
        """Forget the wait so far (after the first, compiling step)."""
        self.wait, self.since = 0.0, time.perf_counter()

    def record(self, step: int, progress, step_fn: Callable) -> tuple:
        """``(mean metrics, train record)`` of the window ending at ``step``; the window starts afresh."""
        mean = {k: _mean([m[k] for m in self.metrics]) for k in self.metrics[0]}
        self.metrics = []
        steps_s, _ = progress.rate(step)
        rec = {"step": step, "split": "train", **mean}
        if progress.examples_per_step and steps_s == steps_s:
            rec["examples_per_s"] = steps_s * progress.examples_per_step
        rec.update(utilisation(step_fn, steps_s))
        now = time.perf_counter()
        if self.timed and now > self.since:   # only when the batches came through ``batches``
            rec["data_wait_fraction"] = self.wait / (now - self.since)
        self.wait, self.since = 0.0, now
        return mean, rec


def _ready(tree) -> bool:
    return all(a.is_ready() for a in jax.tree.leaves(tree) if isinstance(a, jax.Array))


def _mean(values: list):
    v = np.mean(values, axis=0)
    return float(v) if np.ndim(v) == 0 else np.asarray(v, float).tolist()
