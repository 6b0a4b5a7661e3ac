"""The check modes over a :class:`~deepcore.gradcheck.problem.Problem`, batched across leaves.

``first_order`` (fast: ``k`` random unit directions per leaf; full: coordinate directions) evaluates
every leaf's rows in one call of the directional kernel, then moves only the leaves that sat on a kink;
``locate`` bisects a failing leaf down to one element; ``fwd_rev`` compares the JVP with the VJP (reusing
fast mode's rows when it ran); ``second_order`` compares Hessian-vector products with finite
differences of the gradient.
"""
from __future__ import annotations

import numpy as np

from deepcore.gradcheck import second
from deepcore.gradcheck.flat import norm
from deepcore.gradcheck.finite import (FLOOR, NOISE, RTOL0, RTOL1, RTOL2, STENCIL, STEP1, STEP2, estimates,
                                       first_order as judge, not_applicable, result)


class LeafRun:
    """One leaf's rows in a first-order mode: the point, gradient there, row inputs and the kernel's outputs."""

    def __init__(self, leaf, t, idx, seeds, lo, hi, hs):
        self.leaf, self.t, self.g, self.idx = leaf, t, None, idx
        self.seeds, self.lo, self.hi, self.hs = seeds, lo, hi, hs
        self.kinks = 0


def _rows(P, lf, t, dt, k, idx):
    step = STEP1[dt]
    if idx is not None:   # coordinates
        lo = lf.start + idx
        return LeafRun(lf, t, idx, P.seeds(len(idx)), lo, lo + 1, step * np.maximum(1.0, np.abs(t[lo])))
    hs = np.full(k, step * max(1.0, float(np.linalg.norm(t[lf.sl]))))
    return LeafRun(lf, t, None, P.seeds(k), np.full(k, lf.start), np.full(k, lf.start + lf.size), hs)


def _evaluate(P, runs, label):
    """Evaluate the rows of several leaves sharing one point in one kernel call; store outputs per leaf."""
    cat = lambda name: np.concatenate([getattr(r, name) for r in runs])  # noqa: E731
    paths = [r.leaf.path for r in runs for _ in r.seeds]
    F, vg, jv, f0, g = P.directional(runs[0].t, cat("seeds"), cat("lo"), cat("hi"), cat("hs"), (label, paths))
    i = 0
    for r in runs:
        m = len(r.seeds)
        r.F, r.f0, r.g = F[i:i + m], f0, g
        r.vg, r.jv = (None if vg is None else vg[i:i + m]), (None if jv is None else jv[i:i + m])
        i += m


def _judge(P, r, dt, coordinate):
    an = {}
    if r.g is not None:
        an["rev"] = r.vg
    if r.jv is not None:
        an["fwd"] = r.jv
    if r.g is not None:
        gnorm = float(np.linalg.norm(r.g[r.leaf.sl]))
    elif r.jv is not None:
        gnorm = float(np.linalg.norm(r.jv)) / np.sqrt(len(r.jv)) * np.sqrt(r.leaf.size if coordinate else 1)
    else:
        gnorm = 0.0
    r.an = an
    r.checks = {nm: judge(a, r.F, r.f0, r.hs, FLOOR * gnorm, RTOL1[dt], P.eps) for nm, a in an.items()}
    r.kinked = next(iter(r.checks.values()))[2] if r.checks else np.zeros(len(r.seeds), bool)


def first_order(P, t0, mode, dt, *, k, coords, max_moves, progress=None):
    """fast or full checks of every leaf: a list of results (rev, fwd per leaf) and the per-leaf runs."""
    coordinate = mode == "full"
    runs = [_rows(P, lf, t0, dt, k, coords.get(lf.path) if coordinate else None) for lf in P.leaves]
    _evaluate(P, runs, mode)
    for r in runs:
        _judge(P, r, dt, coordinate)
    for _ in range(max_moves):   # move every leaf that sat on a kink, together: one more call
        kinked = [r for r in runs if r.kinked.any()]
        if not kinked:
            break
        if progress:
            progress.note(f"{mode}: moving {len(kinked)} leaves off kinks ({', '.join(r.leaf.path for r in kinked)})")
        t = kinked[0].t
        for r in kinked:
            t = P.move(t, r.leaf.start, r.leaf.start + r.leaf.size)
        new = []
        for r in kinked:
            nr = _rows(P, r.leaf, t, dt, k, r.idx)
            nr.kinks = r.kinks + int(r.kinked.sum())
            new.append(nr)
        _evaluate(P, new, mode)
        for nr in new:
            _judge(P, nr, dt, coordinate)
        runs = [next((nr for nr in new if nr.leaf is r.leaf), r) for r in runs]
    out = []
    for r in runs:
        for nm in ("rev", "fwd"):
            m = f"{mode}/{nm}"
            if nm not in r.checks:
                why = P.supports("grad" if nm == "rev" else "jvp")
                out.append(not_applicable(m, r.leaf, why, fail=(nm == "rev")))
                continue
            err, rel, _ = r.checks[nm]
            out.append(result(m, r.leaf, err, rel, r.idx, RTOL1[dt], r.kinks, r.kinked))
    return out, {r.leaf.path: r for r in runs}


def locate(P, r, name, dt, per_half=2):
    """Bisect a failing leaf with random directions on each half of its range; return one wrong flat index."""
    lf, t = r.leaf, r.t
    lo, hi = 0, lf.size
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        halves = ((lo, mid), (mid, hi))
        h = [STEP1[dt] * max(1.0, float(np.linalg.norm(t[lf.start + a:lf.start + b]))) for a, b in halves]
        hs = np.repeat(h, per_half)
        F, vg, jv, f0, _ = P.directional(t, P.seeds(2 * per_half),
                                      np.repeat([lf.start + a for a, _ in halves], per_half),
                                      np.repeat([lf.start + b for _, b in halves], per_half), hs)
        an = vg if name == "rev" else jv
        err = np.abs(an - estimates(F, f0, hs)[0]).reshape(2, per_half).max(axis=1)
        lo, hi = halves[int(np.argmax(err))]
    return lo


def fwd_rev(P, t0, k, dt, runs=None):
    """JVP against VJP along random directions per leaf (exact, no finite differences)."""
    mode = "fwd-rev"
    runs = dict(runs or {})
    if not runs:   # fast mode did not run: evaluate the rows now (and learn what is supported)
        new = [_rows(P, lf, t0, dt, k, None) for lf in P.leaves]
        _evaluate(P, new, mode)
        runs = {r.leaf.path: r for r in new}
    if P.supports("grad"):
        return [not_applicable(mode, lf, P.supports("grad"), fail=True) for lf in P.leaves]
    if P.supports("jvp"):
        return [not_applicable(mode, lf, P.supports("jvp")) for lf in P.leaves]
    out = []
    for lf in P.leaves:
        r = runs[lf.path]
        a, b = r.jv, r.vg
        rtol = RTOL0[dt]
        atol = 100 * np.sqrt(P.n) * P.eps * norm(r.g)   # rounding, whole-gradient scale
        err = np.abs(a - b)
        rel = err / (np.maximum(np.maximum(np.abs(a), np.abs(b)), FLOOR * float(np.linalg.norm(r.g[lf.sl])))
                     + atol / rtol)
        out.append(result(mode, lf, err, rel, None, rtol, 0, np.zeros(len(a), bool)))
    return out


def second_order(P, t, k, dt, max_moves):
    """HVPs (rev-over-rev, fwd-over-rev) against central differences of the gradient, per leaf."""
    rtol, step = RTOL2[dt], STEP2[dt]
    kinds = [n for n in ("hvp_rr", "hvp_fr") if not P.supports(n)]
    modes = {"hvp_rr": "second/rr", "hvp_fr": "second/fr"}
    if P.supports("grad"):
        return [not_applicable(modes[n], lf, P.supports("grad"), fail=True) for n in modes for lf in P.leaves]
    if not kinds:
        return [not_applicable(modes[n], lf, P.supports(n)) for n in modes for lf in P.leaves]
    kinks = {lf.path: 0 for lf in P.leaves}
    for attempt in range(max_moves + 1):
        hs = np.full(k, step * max(1.0, norm(t)))
        S = second.stats(P, t, k, hs, kinds)
        P.evals["grad"] += k * len(STENCIL) + 1
        P.evals["hvp"] += k * len(kinds)
        noise = NOISE * P.eps * S["mag"] / hs
        per_leaf, any_kink = {}, False
        for lf in P.leaves:
            s = S[lf.path]
            kink = (s["RRs"] > 0.25 * rtol * np.maximum(s["R"], s["Rs"]) + 10 * noise) | (
                s["FB"] > 0.25 * rtol * np.maximum(s["F"], s["B"]) + 4 * noise)
            per_leaf[lf.path] = kink
            if kink.any():
                any_kink = True
                if attempt < max_moves:
                    kinks[lf.path] += int(kink.sum())
        if not any_kink or attempt == max_moves:
            break
        t = P.move(t, 0, P.n)
    out = []
    for n in modes:
        for lf in P.leaves:
            if n not in kinds:
                out.append(not_applicable(modes[n], lf, P.supports(n)))
                continue
            d, arg, an = S[lf.path][n]
            rel = d / (np.maximum(an, S[lf.path]["R"]) + noise / rtol)
            out.append(result(modes[n], lf, d, rel, arg, rtol, kinks[lf.path], per_leaf[lf.path]))
    return out
