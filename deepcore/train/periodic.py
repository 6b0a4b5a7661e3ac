"""Step schedules of the loop: ``Every(n, last)(step)`` is True every ``n`` steps and at the final step."""
from __future__ import annotations

from typing import NamedTuple, Optional


class Every(NamedTuple):
    """``Every(500, last=5000)(step)``: True at steps 500, 1000, ... and at ``last``; never when ``n`` is
    None or 0 (a schedule that is off). Used for logging, evaluation and checkpoints."""

    n: Optional[int]
    last: Optional[int] = None

    def __call__(self, step: int) -> bool:
        return bool(self.n) and (step % self.n == 0 or step == self.last)
