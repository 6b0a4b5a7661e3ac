"""A profiler window: a ``jax.profiler`` trace of chosen training steps, for TensorBoard or Perfetto.

::

    with ProfileWindow("runs/mlp/profile", (10, 15)) as prof:
        for step, batch in ...:
            prof.before(step)
            state, metrics = train(state, batch)
            prof.after(step, metrics)

The trace covers steps ``first`` to ``last`` inclusive (started before ``first`` is dispatched, stopped once
``last`` has finished) and lands in ``log_dir/plugins/profile/<time>/``: ``*.xplane.pb`` (TensorBoard's profile
plugin: ``tensorboard --logdir log_dir``) and ``perfetto_trace.json.gz`` (open in https://ui.perfetto.dev).
Keep the first step (compilation) out of the window unless compilation is what you want to see.
"""
from __future__ import annotations

from typing import Optional, Tuple

import jax


class ProfileWindow:
    """Trace steps ``steps = (first, last)`` (inclusive) into ``log_dir``; ``steps`` None: do nothing."""

    def __init__(self, log_dir: Optional[str], steps: Optional[Tuple[int, int]]):
        if steps is not None:
            if log_dir is None:
                raise ValueError(f"profile_steps={steps} needs an output directory, got none")
            if len(steps) != 2 or not 1 <= steps[0] <= steps[1]:
                raise ValueError(f"profile_steps: expected (first, last) with 1 <= first <= last, got {steps}")
        self.log_dir, self.steps, self.active, self.done = log_dir, steps, False, False

    def before(self, step: int) -> None:
        """Start tracing if ``step`` (about to run) is inside the window."""
        if self.steps and not (self.active or self.done) and self.steps[0] <= step <= self.steps[1]:
            jax.profiler.start_trace(self.log_dir, create_perfetto_trace=True)
            self.active = True

    def after(self, step: int, outputs) -> None:
        """Stop tracing once ``step`` (whose ``outputs`` are waited for) is the window's last."""
        if self.active and step >= self.steps[1]:
            jax.block_until_ready(outputs)
            self.close()

    def close(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active, self.done = False, True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
