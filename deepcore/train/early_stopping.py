"""Early stopping as a value: ``es = es.update(eval_metrics)`` after each evaluation; ``es.stop`` says when to stop.

::

    es = EarlyStopping("val_loss", patience=3)
    for ...:
        es = es.update(evaluate(...))
        if es.stop:
            print(es.message(step)); break

The counters (``best``, ``bad_evals``) are part of the value, so ``es.counters()`` saved with a checkpoint
and ``es._replace(**counters)`` on resume continue the count exactly.
"""
from __future__ import annotations

from typing import NamedTuple, Optional


class EarlyStopping(NamedTuple):
    """Stop when ``metric`` (an eval metric, e.g. ``"val_loss"``) has not improved by ``min_delta``
    for ``patience`` evaluations in a row. ``mode``: ``"min"`` or ``"max"``. ``best``, ``bad_evals``:
    the best value so far and the evaluations since it."""

    metric: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0
    best: Optional[float] = None
    bad_evals: int = 0

    def update(self, metrics: dict) -> "EarlyStopping":
        """The value after one evaluation's ``metrics`` (a dict holding the scalar ``self.metric``)."""
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping.mode: expected 'min' or 'max', got {self.mode!r}")
        if self.metric not in metrics:
            raise KeyError(f"early stopping metric {self.metric!r} not among eval metrics {sorted(metrics)}")
        v = metrics[self.metric]
        if not isinstance(v, float):
            raise ValueError(f"early stopping needs a scalar {self.metric!r}, got {v!r} (a population?)")
        best = self.best
        better = best is None or (v < best - self.min_delta if self.mode == "min" else v > best + self.min_delta)
        return self._replace(best=v, bad_evals=0) if better else self._replace(bad_evals=self.bad_evals + 1)

    @property
    def stop(self) -> bool:
        """Whether patience has run out."""
        return self.bad_evals >= self.patience

    def message(self, step: int) -> str:
        return (f"early stopping at step {step}: {self.metric} has not improved on {self.best:.6g} "
                f"for {self.patience} evaluations")

    def counters(self) -> dict:
        """``{"best", "bad_evals"}``: what a checkpoint keeps to continue the count."""
        return {"best": self.best, "bad_evals": self.bad_evals}
