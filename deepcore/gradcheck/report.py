"""The gradient-check report: one :class:`LeafResult` per (mode, leaf); ``str(report)`` is compact (failures,
then one line per mode), ``report.table()`` has every leaf, ``report.to_json()`` everything."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

PASS, FAIL, KINK, NA = "pass", "fail", "kink", "n/a"


@dataclass
class LeafResult:
    """How one differentiated leaf fared in one mode.

    ``mode`` is one of ``fast/rev`` (<J^T u, v> vs finite differences), ``fast/fwd`` (JVP vs finite
    differences), ``full/rev``, ``full/fwd`` (per coordinate), ``fwd-rev`` (JVP vs VJP, exact),
    ``second/rr`` and ``second/fr`` (Hessian-vector products, reverse-over-reverse and
    forward-over-reverse, vs finite differences of the gradient).
    ``where`` names the worst element, e.g. ``params/conv_1/w[2,0,3,7]``. ``verdict`` is ``pass``,
    ``fail``, ``kink`` (only non-differentiable points found, even after moving the point) or ``n/a``
    (the mode does not apply, e.g. forward mode through a ``custom_vjp``; ``note`` says why).
    """

    mode: str
    path: str
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    where: str
    tol: float
    verdict: str
    kinks: int = 0
    checks: int = 0
    note: str = ""


@dataclass
class Report:
    """All results of one :func:`deepcore.gradcheck.check_grads` call.

    ``ok`` is False when any result failed. ``skipped`` lists integer/boolean leaves that were not
    perturbed. ``evals`` counts function points, gradients, JVPs and HVPs the check used.
    """

    name: str
    dtype: str
    results: List[LeafResult] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    evals: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures()

    def add(self, other: "Report", tag: str) -> None:
        """Append ``other``'s results with their mode prefixed by ``tag`` (``"train fast/rev"``), its skipped
        leaves and its evaluation counts (one report for a model checked in several modes)."""
        for res in other.results:
            res.mode = f"{tag} {res.mode}"
        self.results += other.results
        self.skipped = other.skipped
        for k, v in other.evals.items():
            self.evals[k] = self.evals.get(k, 0) + v

    def failures(self) -> List[LeafResult]:
        return [r for r in self.results if r.verdict == FAIL]

    def by_mode(self, mode: str) -> List[LeafResult]:
        return [r for r in self.results if r.mode == mode]

    def result(self, mode: str, path: str) -> Optional[LeafResult]:
        """The result for ``mode`` and the leaf ``path`` (e.g. ``"params/dense_0/w"``), or None."""
        for r in self.results:
            if r.mode == mode and r.path == path:
                return r
        return None

    def summary(self) -> List[dict]:
        """One row per mode: the worst leaf's relative error, its location, tolerance and verdict."""
        rows = []
        for mode in dict.fromkeys(r.mode for r in self.results):
            rs = self.by_mode(mode)
            checked = [r for r in rs if r.verdict in (PASS, FAIL)]
            worst = max(checked, key=lambda r: r.max_rel_err / (r.tol or 1.0)) if checked else rs[0]
            verdict = FAIL if any(r.verdict == FAIL for r in rs) else (
                PASS if checked else worst.verdict)
            rows.append(dict(name=self.name, mode=mode, max_rel_err=worst.max_rel_err, tol=worst.tol,
                             where=worst.where, verdict=verdict, kinks=sum(r.kinks for r in rs),
                             note=next((r.note for r in rs if r.verdict == FAIL and r.note), "")))
        return rows

    def to_dict(self) -> dict:
        return dict(name=self.name, dtype=self.dtype, ok=self.ok, skipped=self.skipped, evals=self.evals,
                    results=[asdict(r) for r in self.results])

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def table(self) -> str:
        """Per-leaf table: mode, leaf, max abs/rel error, worst element, tolerance, verdict."""
        rows = [("mode", "leaf", "max abs err", "max rel err", "tol", "verdict", "where")]
        for r in self.results:
            verdict = r.verdict + (f" ({r.kinks} kinks moved)" if r.kinks else "")
            rows.append((r.mode, r.path, f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}", f"{r.tol:.0e}",
                         verdict + (f" [{r.note}]" if r.note and r.verdict != PASS else ""), r.where))
        head = f"gradcheck {self.name} ({self.dtype}): {'ok' if self.ok else 'FAILED'}"
        if self.skipped:
            head += f"; not perturbed (integer/bool): {', '.join(self.skipped)}"
        return head + "\n" + format_rows(rows)

    def compact(self) -> str:
        """Failures with their located element, then one line per mode (worst leaf, tolerance, verdict)."""
        lines = [f"gradcheck {self.name} ({self.dtype}): {'ok' if self.ok else 'FAILED'}"
                 + (f"; not perturbed (integer/bool): {', '.join(self.skipped)}" if self.skipped else "")]
        for r in self.failures():
            lines.append(f"  FAIL {r.mode} {r.where}: rel err {r.max_rel_err:.2e} > tol {r.tol:.0e}"
                         + (f" [{r.note}]" if r.note else ""))
        rows = [("mode", "max rel err", "tol", "verdict", "worst at")]
        for s in self.summary():
            n = sum(1 for r in self.by_mode(s["mode"]))
            verdict = s["verdict"] + f" ({n} leaves" + (f", {s['kinks']} kinks moved)" if s["kinks"] else ")")
            rows.append((s["mode"], f"{s['max_rel_err']:.2e}", f"{s['tol']:.0e}", verdict, s["where"]))
        return "\n".join(lines) + ("\n" + format_rows(rows) if len(rows) > 1 else "")

    def __str__(self) -> str:
        return self.compact()


def format_rows(rows) -> str:
    """Left-aligned columns from a list of tuples (the first one is the header)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
