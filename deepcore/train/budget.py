"""A wall-clock training budget for recipes whose target is "the figure after N minutes of training".

    budget = TimeBudget(minutes=10, total_steps=None, spent=spent_before(out_dir) if resume else 0.0)
    tx = optax.inject_hyperparams(make_optimizer)(learning_rate=args.lr)
    step = budget.with_lr(train_step(loss, tx), warmup_cosine(args.lr, warmup_steps=100))
    fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps, eval_step=budget.excluded(eval_fn),
        time_left=budget.time_left, ...)

* Training time runs from the first batch (the first step's compilation included) and excludes the time
  spent in evaluations; a resumed run continues the clock from the newest checkpoint's evaluation record
  (``val_train_s``, written by :meth:`TimeBudget.excluded`). When the budget is spent the batches stop, ``fit``
  checkpoints the step reached and returns; resuming a finished run trains no further.
* The learning rate follows ``progress = max(step / total_steps, train seconds / budget)``, so a cosine decay
  ends when the time does, however fast the machine is. It is set on the host before each step (``optax``'s
  ``inject_hyperparams`` keeps it in the optimiser state, hence in checkpoints). With a time budget two runs
  are not bit-identical (the schedule depends on the clock); with ``total_steps`` alone they are.
* Why not ``optax.warmup_cosine_decay_schedule``: optax's schedules are functions of the step count, traced in
  float32; here the cosine's argument is a wall-clock fraction known only on the host, and the warm-up
  multiplies the cosine rather than preceding it. :func:`warmup_cosine` is that formula in float64.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterator, Optional


def last_checkpointed(out_dir: str, key: str, default: float = 0.0) -> float:
    """``key`` of the newest ``metrics.jsonl`` record at or before the newest checkpoint in ``out_dir`` (for
    resuming clocks such as seconds already spent); ``default`` when there is none."""
    import os

    from deepcore.train.checkpoint import Checkpointer
    from deepcore.train.metrics_log import read_metrics

    ckdir = os.path.join(out_dir, "checkpoints")
    if not os.path.isdir(ckdir):
        return default
    with Checkpointer(ckdir) as ckpt:
        last = ckpt.latest_step()
    if last is None:
        return default
    return max((r[key] for r in read_metrics(out_dir) if key in r and r["step"] <= last), default=default)


def spent_before(out_dir: str) -> float:
    """Training seconds of the run being resumed: ``val_train_s`` of the newest checkpointed evaluation."""
    return last_checkpointed(out_dir, "val_train_s")


def warmup_cosine(peak: float, warmup_steps: int, end_fraction: float = 0.05) -> Callable[[int, float], float]:
    """``lr(step, progress)``: linear warm-up over ``warmup_steps`` steps, then a cosine from ``peak`` to
    ``end_fraction * peak`` as ``progress`` goes from 0 to 1."""

    def lr(step: int, progress: float) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        p = min(max(progress, 0.0), 1.0)
        return peak * warm * (end_fraction + (1 - end_fraction) * 0.5 * (1 + math.cos(math.pi * p)))

    return lr


class TimeBudget:
    """Training seconds (evaluations excluded) across resumed segments, a stop when ``minutes`` are spent, and
    the progress ``max(step / total_steps, seconds / budget)`` for the learning-rate schedule."""

    def __init__(self, minutes: Optional[float], total_steps: Optional[int], spent: float = 0.0):
        if minutes is None and total_steps is None:
            raise ValueError("TimeBudget: expected minutes or total_steps, got neither")
        self.seconds = None if minutes is None else 60.0 * minutes
        self.total_steps = total_steps
        self.spent, self.step = spent, 0
        self._t0: Optional[float] = None
        self._excluded = 0.0

    @property
    def fit_steps(self) -> Optional[int]:
        """The ``steps`` to give ``fit``: ``total_steps``, or None (until the time is spent)."""
        return self.total_steps

    def time_left(self) -> float:
        """Training seconds left (infinite without a time budget): ``fit``'s ``time_left``."""
        return float("inf") if self.seconds is None else self.seconds - self.train_s

    @property
    def train_s(self) -> float:
        """Training seconds so far, previous segments included."""
        if self._t0 is None:
            return self.spent
        return self.spent + time.perf_counter() - self._t0 - self._excluded

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.train_s >= self.seconds

    def progress(self) -> float:
        p = [self.step / self.total_steps] if self.total_steps else []
        if self.seconds:
            p.append(self.train_s / self.seconds)
        return min(1.0, max(p))

    def batches(self, source: Callable[[int], Iterator]) -> Callable[[int], Iterator]:
        """``source(start_step)`` cut off when the budget is spent; tracks the step of the next update."""

        def gen(start: int):
            self.step = start
            for batch in source(start):
                if self._t0 is None:
                    self._t0 = time.perf_counter()
                if self.expired:
                    return
                yield batch
                self.step += 1

        return gen

    def excluded(self, fn: Callable) -> Callable:
        """``fn(state, batch) -> metrics`` whose time does not count, with ``train_s`` (a constant, so its mean
        over the batches of an evaluation is the training time at that evaluation) added to its metrics."""
        import jax
        import numpy as np

        def run(state, batch):
            t = time.perf_counter()
            out = jax.block_until_ready(fn(state, batch))
            out = dict(out, train_s=np.float64(self.train_s - (time.perf_counter() - t)))
            self._excluded += time.perf_counter() - t
            return out

        return run

    def with_lr(self, step_fn: Callable, lr: Callable[[int, float], float]) -> Callable:
        """``step_fn`` over an ``inject_hyperparams`` optimiser state, its ``learning_rate`` set to
        ``lr(step, progress)`` before each update."""
        import jax
        import numpy as np

        def step(state, batch):
            hp = state.opt_state.hyperparams
            old = hp["learning_rate"]
            new = jax.device_put(np.asarray(lr(self.step, self.progress()), old.dtype), old.sharding)
            opt_state = state.opt_state._replace(hyperparams={**hp, "learning_rate": new})
            return step_fn(state.replace(opt_state=opt_state), batch)

        return step
