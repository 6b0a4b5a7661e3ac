"""Finite-difference checks of JAX derivatives for any function of pytrees.

:func:`check_grads` flattens the differentiated floating leaves of the chosen arguments into one
vector ``theta`` (integer, boolean and key leaves are kept fixed and listed as skipped), reduces the
output to a scalar ``<u, f(theta)>`` with a fixed random cotangent ``u`` (unless it is already a
scalar) and compares, per leaf:

* ``fast``: ``k`` random unit directions ``v`` per leaf; the reverse-mode ``<J^T u, v>`` and the
  forward-mode ``<u, J v>`` (a JVP) against a central difference. Cost depends on ``k`` and the number
  of leaves, never on the leaf sizes. A failing leaf is then bisected to name one wrong element.
* ``full``: coordinate directions: every element of a leaf with at most ``full_max`` elements,
  ``samples`` random elements of larger ones.
* ``fwd-rev``: the JVP against the VJP along random directions; exact, no finite differences.
* ``second``: Hessian-vector products by reverse-over-reverse and forward-over-reverse against
  central differences of the gradient.

Finite differences use a Richardson-extrapolated central difference (a five-point stencil) with a
step chosen per dtype and scaled by the norm of the point on the perturbed leaf. The same estimate at
``h/10`` and one-sided estimates at ``h`` detect kinks (ReLU at 0, max-pool ties, ``abs``): such a
point is reported as non-differentiable and the point is moved, instead of a false failure.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.gradcheck.report import FAIL, KINK, NA, PASS, LeafResult, Report

MODES = ("fast", "full", "fwd-rev", "second")

# step base (relative to max(1, |point|)), first-order rtol, second-order rtol, exact rtol, per dtype
_STEP1 = {"float64": 1e-5, "float32": 1e-2, "bfloat16": 1e-1, "float16": 1e-1}
_STEP2 = {"float64": 1e-4, "float32": 3e-2, "bfloat16": 1e-1, "float16": 1e-1}
_RTOL1 = {"float64": 1e-6, "float32": 2e-2, "bfloat16": 2e-1, "float16": 2e-1}
_RTOL2 = {"float64": 1e-5, "float32": 5e-2, "bfloat16": 3e-1, "float16": 3e-1}
_RTOL0 = {"float64": 1e-9, "float32": 1e-4, "bfloat16": 3e-2, "float16": 3e-2}
_STENCIL = np.array([1.0, -1.0, 2.0, -2.0, 0.1, -0.1, 0.2, -0.2])
_NOISE = 100.0  # rounding error of one evaluation, in units of eps * max|value|
_FLOOR = 1e-4   # relative-error floor, as a fraction of the leaf's gradient norm (unit directions)


@dataclass
class _Leaf:
    path: str
    shape: tuple
    start: int
    size: int

    @property
    def sl(self) -> slice:
        return slice(self.start, self.start + self.size)

    def where(self, i: Optional[int] = None) -> str:
        if i is None or not self.shape:
            return self.path
        return self.path + "[" + ",".join(str(int(j)) for j in np.unravel_index(int(i), self.shape)) + "]"


def _key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _cast_tree(tree, dtype):
    def cast(a):
        a = jnp.asarray(a)
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree.map(cast, tree)


def _dtype_name(dtype) -> str:
    name = jnp.dtype(dtype).name
    if name not in _STEP1:
        raise ValueError(f"gradcheck: dtype must be float64, float32, bfloat16 or float16, got {name}")
    return name


def _ctx(dtype_name):
    return jax.enable_x64(True) if dtype_name == "float64" else contextlib.nullcontext()


class _Problem:
    """``f`` as a scalar function of one flat vector, with its batched derivatives and counters."""

    def __init__(self, f, args, argnums, argnames, has_aux, dtype, rng, jit):
        self.dtype, self.rng, self.eps = dtype, rng, float(jnp.finfo(dtype).eps)
        args = tuple(_cast_tree(a, dtype) for a in args)
        self.leaves, self.skipped, entries, parts = [], [], {}, []
        start = 0
        for i in argnums:
            flat, treedef = jax.tree_util.tree_flatten_with_path(args[i])
            ents = []
            for kp, leaf in flat:
                path = argnames[i] + "".join("/" + _key_name(k) for k in kp)
                dt = leaf.dtype
                if jnp.issubdtype(dt, jnp.complexfloating):
                    raise ValueError(
                        f"gradcheck: complex leaf {path} ({dt}) is not supported; "
                        f"pass its real and imaginary parts as separate real arrays")
                if jnp.issubdtype(dt, jnp.floating):
                    lf = _Leaf(path, tuple(leaf.shape), start, int(np.prod(leaf.shape, dtype=np.int64)))
                    self.leaves.append(lf)
                    parts.append(np.asarray(leaf, np.float64).ravel())
                    ents.append(("diff", lf))
                    start += lf.size
                else:
                    self.skipped.append(path)
                    ents.append(("const", leaf))
            entries[i] = (treedef, ents)
        self.n = start
        self.theta0 = np.concatenate(parts) if parts else np.zeros(0)

        def rebuild(theta):
            new = list(args)
            for i, (treedef, ents) in entries.items():
                vals = [theta[v.sl].reshape(v.shape) if kind == "diff" else v for kind, v in ents]
                new[i] = jax.tree_util.tree_unflatten(treedef, vals)
            return new

        out = jax.eval_shape(lambda *a: f(*a), *args)
        out = out[0] if has_aux else out
        outs = [o for o in jax.tree.leaves(out) if jnp.issubdtype(o.dtype, jnp.floating)]
        if not outs:
            raise ValueError("gradcheck: the function has no floating-point output to differentiate")
        low = [o.dtype.name for o in outs if jnp.finfo(o.dtype).eps > self.eps]
        if low:
            warnings.warn(f"gradcheck: the function returns {low[0]} while checking in {jnp.dtype(dtype).name}; "
                          f"it casts internally, so finite differences lose precision", stacklevel=4)
        scalar = len(outs) == 1 and outs[0].shape == ()
        self.cotangent = None if scalar else [jnp.asarray(rng.standard_normal(o.shape), dtype) for o in outs]

        def f_flat(theta):
            y = f(*rebuild(theta))
            y = y[0] if has_aux else y
            ys = [o for o in jax.tree.leaves(y) if jnp.issubdtype(o.dtype, jnp.floating)]
            if scalar:
                return ys[0].astype(dtype)
            return sum(jnp.sum(o.astype(dtype) * u) for o, u in zip(ys, self.cotangent))

        self.f = f_flat
        J = jax.jit if jit else (lambda fn: fn)
        grad = jax.grad(f_flat)
        # batched kernels over rows (point p, direction v); a JVP also returns the value, so one
        # compiled kernel gives both the stencil values and the forward-mode derivatives
        kernels = {
            "fj": lambda p, v: jax.jvp(f_flat, (p,), (v,)),
            "f": lambda p, v: f_flat(p),
            "gh": lambda p, v: jax.jvp(grad, (p,), (v,)),
            "g": lambda p, v: grad(p),
            "hvp_rr": lambda p, v: jax.grad(lambda s: jnp.vdot(grad(s), v))(p),
        }
        self._batched = {n: J(jax.vmap(fn)) for n, fn in kernels.items()}
        self._loop = {n: J(lambda P, V, fn=fn: jax.lax.map(lambda pv: fn(*pv), (P, V))) for n, fn in kernels.items()}
        self._grad = J(grad)
        self.chunk = int(np.clip(2 ** 25 // max(1, self.n * jnp.dtype(dtype).itemsize), 8, 256))
        self.evals = {"f": 0, "grad": 0, "jvp": 0, "hvp": 0}
        self.support = _Support(self)

    # -------------------------------------------------------------------------------- evaluation

    def gradient(self, t) -> np.ndarray:
        self.evals["grad"] += 1
        return np.asarray(self._grad(jnp.asarray(t, self.dtype)), np.float64)

    def kernel(self, name: str, P, V):
        """Kernel ``name`` on rows ``(P[i], V[i])``, in fixed-size chunks (one compilation)."""
        m, c = len(P), self.chunk
        pad = (-m) % c
        if pad:
            P, V = (np.concatenate([A, np.repeat(A[:1], pad, 0)]) for A in (P, V))
        outs = []
        for i in range(0, len(P), c):
            Pc, Vc = (jnp.asarray(A[i:i + c], self.dtype) for A in (P, V))
            try:
                out = self._batched[name](Pc, Vc)
            except Exception:  # no batching rule somewhere: evaluate one by one
                self._batched[name] = self._loop[name]
                out = self._batched[name](Pc, Vc)
            outs.append(jax.tree.map(lambda a: np.asarray(a, np.float64), out))
        return jax.tree.map(lambda *a: np.concatenate(a)[:m], *outs)

    def run(self, name: str, t, X, count: bool = True) -> np.ndarray:
        """``f`` or ``grad`` at the points ``X`` (rows), or ``jvp``/``hvp_fr``/``hvp_rr`` at ``t`` along rows ``X``."""
        X = np.asarray(X, np.float64)
        T = np.broadcast_to(np.asarray(t, np.float64), X.shape)
        zeros = np.zeros_like(X)
        if name == "f":
            out = self.kernel("fj", X, zeros)[0] if not self.support["jvp"] else self.kernel("f", X, zeros)
        elif name == "jvp":
            out = self.kernel("fj", T, X)[1]
        elif name == "grad":
            out = self.kernel("gh", X, zeros)[0] if not self.support["hvp_fr"] else self.kernel("g", X, zeros)
        elif name == "hvp_fr":
            out = self.kernel("gh", T, X)[1]
        else:
            out = self.kernel(name, T, X)
        if count:
            self.evals["hvp" if name.startswith("hvp") else name] += len(X)
        return out

    def stencil(self, name: str, t, V, hs) -> np.ndarray:
        """Values of ``f`` or its gradient at ``t + c h v`` for the stencil ``c``: shape (m, 8, ...)."""
        m, out = len(V), []
        group = max(1, (2 ** 24) // max(1, 8 * self.n))
        for i in range(0, m, group):
            Vg, hg = V[i:i + group], hs[i:i + group]
            P = t[None, None, :] + (_STENCIL[None, :, None] * hg[:, None, None]) * Vg[:, None, :]
            vals = self.run(name, t, P.reshape(-1, self.n))
            out.append(vals.reshape((len(Vg), len(_STENCIL)) + vals.shape[1:]))
        return np.concatenate(out)

    # -------------------------------------------------------------------------------- helpers

    def directions(self, support: np.ndarray, k: int) -> np.ndarray:
        """``k`` random unit vectors supported on the flat indices ``support``."""
        V = np.zeros((k, self.n))
        r = self.rng.standard_normal((k, len(support)))
        V[:, support] = r / np.linalg.norm(r, axis=1, keepdims=True)
        return V

    def move(self, t, support: np.ndarray) -> np.ndarray:
        """A nearby point: the entries ``support`` jittered by about 1% of their scale."""
        t = np.array(t)
        x = t[support]
        rms = np.sqrt(np.mean(x ** 2)) if len(x) else 0.0
        t[support] = x + 1e-2 * (np.abs(x) + rms + 1e-2) * self.rng.standard_normal(len(x))
        return t


class _Support:
    """``support[name]`` is ``""`` when the derivative ``name`` can be computed, else why not (one line)."""

    def __init__(self, problem):
        self.problem, self.why = problem, {}

    def __getitem__(self, name):
        if name not in self.why:
            P = self.problem
            kernel = {"jvp": "fj", "hvp_fr": "gh", "hvp_rr": "hvp_rr"}.get(name)
            try:
                if kernel is None:
                    P._grad(jnp.asarray(P.theta0, P.dtype))
                else:
                    P.kernel(kernel, P.theta0[None], P.theta0[None])
                self.why[name] = ""
            except Exception as e:  # the mode does not apply (e.g. forward mode through a custom_vjp)
                text = str(e).strip()
                self.why[name] = text.splitlines()[0][:160] if text else type(e).__name__
        return self.why[name]


def _estimates(F, f0, hs):
    """Richardson-extrapolated central differences at h and h/10, and one-sided ones at h."""
    h = hs.reshape((-1,) + (1,) * (F.ndim - 2))
    s = h / 10
    R = (4 * (F[:, 0] - F[:, 1]) / (2 * h) - (F[:, 2] - F[:, 3]) / (4 * h)) / 3
    Rs = (4 * (F[:, 4] - F[:, 5]) / (2 * s) - (F[:, 6] - F[:, 7]) / (4 * s)) / 3
    fwd = (-3 * f0 + 4 * F[:, 0] - F[:, 2]) / (2 * h)
    bwd = (3 * f0 - 4 * F[:, 1] + F[:, 3]) / (2 * h)
    return R, Rs, fwd, bwd


def _first_order(an, F, f0, hs, floor, rtol, eps):
    """Per direction: (abs err, rel err, kink?) of scalar derivatives ``an`` against the stencil ``F``."""
    R, Rs, fwd, bwd = _estimates(F, f0, hs)
    mag = np.maximum(np.abs(F).max(axis=1), abs(f0))
    noise = _NOISE * eps * mag / hs
    kink = (np.abs(R - Rs) > 0.25 * rtol * np.maximum(np.maximum(abs(R), abs(Rs)), floor) + 10 * noise) | (
        np.abs(fwd - bwd) > 0.25 * rtol * np.maximum(np.maximum(abs(fwd), abs(bwd)), floor) + 4 * noise)
    err = np.abs(an - R)
    rel = err / (np.maximum(np.maximum(np.abs(an), np.abs(R)), floor) + noise / rtol)
    return err, rel, kink


def _result(mode, leaf, err, rel, where_idx, tol, kinks, kinked, note=""):
    """Summarise per-check errors (kinked checks excluded) into a :class:`LeafResult`."""
    good = ~kinked
    if not good.any():
        return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("nan"), leaf.path, tol, KINK,
                          kinks, 0, "only non-differentiable points found")
    i = int(np.argmax(np.where(good, rel, -1)))
    verdict = PASS if rel[i] <= tol else FAIL
    where = leaf.where(where_idx[i]) if where_idx is not None else leaf.path
    return LeafResult(mode, leaf.path, leaf.shape, float(err[good].max()), float(rel[i]), where, tol, verdict,
                      kinks, int(good.sum()), note)


def _na(mode, leaf, why, fail=False):
    """A mode that cannot run: ``n/a`` (e.g. forward mode through a custom_vjp), or a failure when
    reverse mode itself raises (a gradient that cannot be taken is a broken gradient)."""
    if fail:
        return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("inf"), leaf.path, 0.0, FAIL, 0, 0,
                          "reverse-mode differentiation raised: " + why)
    return LeafResult(mode, leaf.path, leaf.shape, float("nan"), float("nan"), leaf.path, 0.0, NA, 0, 0, why)


# ------------------------------------------------------------------------------------ the modes

def _first_order_leaf(P, leaf, t, k_or_idx, dt, max_moves, coordinate):
    """fast (random directions) or full (coordinates) checks of one leaf: results for rev and fwd."""
    rtol, step = _RTOL1[dt], _STEP1[dt]
    kinks = 0
    for attempt in range(max_moves + 1):
        g = P.gradient(t) if not P.support["grad"] else None
        if coordinate:
            idx = k_or_idx
            V = np.zeros((len(idx), P.n))
            V[np.arange(len(idx)), leaf.start + idx] = 1.0
            hs = step * np.maximum(1.0, np.abs(t[leaf.start + idx]))
        else:
            idx = None
            V = P.directions(np.arange(leaf.start, leaf.start + leaf.size), k_or_idx)
            hs = np.full(len(V), step * max(1.0, float(np.linalg.norm(t[leaf.sl]))))
        gnorm = float(np.linalg.norm(g[leaf.sl])) if g is not None else 0.0
        F = P.stencil("f", t, V, hs)
        f0 = float(P.run("f", t, t[None])[0])
        an = {}
        if g is not None:
            an["rev"] = V @ g
        if not P.support["jvp"]:
            an["fwd"] = P.run("jvp", t, V)
        if g is None and "fwd" in an:
            gnorm = float(np.linalg.norm(an["fwd"])) / np.sqrt(len(V)) * np.sqrt(leaf.size if coordinate else 1)
        floor = _FLOOR * gnorm
        checks = {name: _first_order(a, F, f0, hs, floor, rtol, P.eps) for name, a in an.items()}
        kinked = next(iter(checks.values()))[2] if checks else np.zeros(len(V), bool)
        if not kinked.any() or attempt == max_moves:
            break
        kinks += int(kinked.sum())
        t = P.move(t, np.arange(leaf.start, leaf.start + leaf.size))
    prefix = "full" if coordinate else "fast"
    out = {}
    for name in ("rev", "fwd"):
        mode = f"{prefix}/{name}"
        if name not in checks:
            why = P.support["grad" if name == "rev" else "jvp"]
            out[name] = _na(mode, leaf, why, fail=(name == "rev"))
            continue
        err, rel, _ = checks[name]
        out[name] = _result(mode, leaf, err, rel, idx, rtol, kinks, kinked)
        out[name]._state = (t, an[name])
    return out


def _locate(P, leaf, t, name, dt, per_half=2):
    """Bisect a failing leaf with random directions on each half; return one wrong flat index."""
    rtol, step = _RTOL1[dt], _STEP1[dt]
    g = P.gradient(t) if name == "rev" else None
    idx = np.arange(leaf.size)
    f0 = float(P.run("f", t, t[None])[0])
    while len(idx) > 1:
        halves = (idx[: len(idx) // 2], idx[len(idx) // 2:])
        scores = []
        for half in halves:
            V = P.directions(leaf.start + half, per_half)
            hs = np.full(per_half, step * max(1.0, float(np.linalg.norm(t[leaf.start + half]))))
            an = V @ g if g is not None else P.run("jvp", t, V)
            R = _estimates(P.stencil("f", t, V, hs), f0, hs)[0]
            scores.append(float(np.abs(an - R).max()))
        idx = halves[int(np.argmax(scores))]
    return int(idx[0])


def _fwd_rev_leaf(P, leaf, t, g, k, dt):
    mode = "fwd-rev"
    if P.support["grad"]:
        return _na(mode, leaf, P.support["grad"], fail=True)
    if P.support["jvp"]:
        return _na(mode, leaf, P.support["jvp"])
    V = P.directions(np.arange(leaf.start, leaf.start + leaf.size), k)
    a, b = P.run("jvp", t, V), V @ g
    gnorm = float(np.linalg.norm(g[leaf.sl]))
    rtol = _RTOL0[dt]
    atol = 100 * np.sqrt(P.n) * P.eps * float(np.linalg.norm(g))  # rounding, on the scale of the whole gradient
    err = np.abs(a - b)
    rel = err / (np.maximum(np.maximum(np.abs(a), np.abs(b)), _FLOOR * gnorm) + atol / rtol)
    return _result(mode, leaf, err, rel, None, rtol, 0, np.zeros(k, bool))


def _second_order(P, t, k, dt, max_moves):
    """HVPs (rev-over-rev, fwd-over-rev) against central differences of the gradient, per leaf."""
    rtol, step = _RTOL2[dt], _STEP2[dt]
    kinds = [n for n in ("hvp_rr", "hvp_fr") if not P.support[n]]
    modes = {"hvp_rr": "second/rr", "hvp_fr": "second/fr"}
    if P.support["grad"]:
        return [_na(modes[n], lf, P.support["grad"], fail=True) for n in modes for lf in P.leaves]
    if not kinds:
        return [_na(modes[n], lf, P.support[n]) for n in modes for lf in P.leaves]
    everything = np.arange(P.n)
    kinks = {lf.path: 0 for lf in P.leaves}
    for attempt in range(max_moves + 1):
        V = P.directions(everything, k)
        hs = np.full(k, step * max(1.0, float(np.linalg.norm(t))))
        G = P.stencil("grad", t, V, hs)
        g0 = P.gradient(t)
        R, Rs, fwd, bwd = _estimates(G, g0, hs)
        an = {n: P.run(n, t, V) for n in kinds}
        per_leaf, any_kink = {}, False
        for lf in P.leaves:
            sl = lf.sl
            mag = np.maximum(np.abs(G).max(axis=(1, 2)), np.abs(g0).max())  # rounding: whole-gradient scale
            noise = _NOISE * P.eps * mag / hs
            inf = lambda a: np.abs(a[:, sl]).max(axis=1)  # noqa: E731
            kink = (inf(R - Rs) > 0.25 * rtol * np.maximum(inf(R), inf(Rs)) + 10 * noise) | (
                inf(fwd - bwd) > 0.25 * rtol * np.maximum(inf(fwd), inf(bwd)) + 4 * noise)
            per_leaf[lf.path] = (noise, kink)
            if kink.any():
                any_kink = True
                if attempt < max_moves:
                    kinks[lf.path] += int(kink.sum())
        if not any_kink or attempt == max_moves:
            break
        t = P.move(t, everything)
    out = []
    for n in modes:
        for lf in P.leaves:
            if n not in an:
                out.append(_na(modes[n], lf, P.support[n]))
                continue
            noise, kink = per_leaf[lf.path]
            d = np.abs(an[n][:, lf.sl] - R[:, lf.sl])
            err = d.max(axis=1)
            where = d.argmax(axis=1)
            scale = np.maximum(np.abs(an[n][:, lf.sl]).max(axis=1), np.abs(R[:, lf.sl]).max(axis=1))
            rel = err / (scale + noise / rtol)
            out.append(_result(modes[n], lf, err, rel, where, rtol, kinks[lf.path], kink))
    return out


# ------------------------------------------------------------------------------------ public API

def check_grads(f: Callable, args: Union[tuple, list, object], argnums: Union[int, Sequence[int]] = 0, *,
                argnames: Optional[Sequence[str]] = None, modes: Sequence[str] = MODES, k: int = 4,
                hvp_k: int = 2, full_max: int = 256, samples: int = 32, dtype=jnp.float64, seed: int = 0,
                has_aux: bool = False, max_moves: int = 3, locate: bool = True, jit: bool = True,
                name: Optional[str] = None) -> Report:
    """Check the derivatives of ``f(*args)`` with respect to ``args[i]`` for ``i`` in ``argnums``.

    ``f`` returns a pytree of float arrays (reduced to a scalar with a fixed random cotangent) or,
    with ``has_aux=True``, a pair ``(output, aux)`` whose ``aux`` (e.g. new model state) is ignored.
    ``argnames`` names the arguments in reported paths (default ``arg0``, ``arg1``, ...). Pass any
    randomness as a fixed key argument so every evaluation draws the same numbers.
    The check runs in ``dtype`` (float64 by default, with 64-bit mode enabled only for its duration;
    floating inputs are converted); other dtypes warn and use wider tolerances.
    Returns a :class:`~deepcore.gradcheck.report.Report`; see :func:`assert_grads_ok` for tests.
    """
    dt = _dtype_name(dtype)
    if dt != "float64":
        warnings.warn(f"gradcheck in {dt}: finite differences are imprecise in this dtype; tolerances widened "
                      f"to rtol={_RTOL1[dt]:g} (first order), {_RTOL2[dt]:g} (second order). "
                      f"Check in float64 (the default) for a tight verdict.", stacklevel=2)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"gradcheck: unknown modes {sorted(unknown)}; choose from {MODES}")
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    argnames = tuple(argnames) if argnames else tuple(f"arg{i}" for i in range(len(args)))
    rng = np.random.default_rng(seed)
    name = name or getattr(f, "__name__", "f")
    with _ctx(dt):
        dtype = jnp.dtype(dtype) if dt != "bfloat16" else jnp.bfloat16
        P = _Problem(f, args, argnums, argnames, has_aux, dtype, rng, jit)
        report = Report(name, dt, skipped=P.skipped, evals=P.evals)
        if not P.leaves:
            return report
        t0 = P.theta0
        results = []
        for mode in modes:
            if mode in ("fast", "full"):
                for lf in P.leaves:
                    if mode == "fast":
                        arg = k
                    elif lf.size <= full_max:
                        arg = np.arange(lf.size)
                    else:
                        arg = np.sort(rng.choice(lf.size, samples, replace=False))
                    res = _first_order_leaf(P, lf, t0, arg, dt, max_moves, coordinate=(mode == "full"))
                    for nm, r in res.items():
                        state = getattr(r, "_state", None)
                        if hasattr(r, "_state"):
                            del r._state
                        if mode == "fast" and locate and r.verdict == FAIL and state is not None:
                            r.where = lf.where(_locate(P, lf, state[0], nm, dt))
                        results.append(r)
            elif mode == "fwd-rev":
                g = P.gradient(t0) if not P.support["grad"] else None
                results += [_fwd_rev_leaf(P, lf, t0, g, k, dt) for lf in P.leaves]
            elif mode == "second":
                results += _second_order(P, t0, hvp_k, dt, max_moves)
        report.results = results
    return report


def assert_grads_ok(f: Callable, args, argnums=0, **kw) -> Report:
    """:func:`check_grads`, raising ``AssertionError`` with the report's table when anything fails."""
    report = check_grads(f, args, argnums, **kw)
    if not report.ok:
        raise AssertionError("gradient check failed:\n" + report.table())
    return report
