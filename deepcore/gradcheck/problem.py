"""``f(*args)`` as a scalar function of one flat vector ``theta``, and its compiled, batched derivatives.

The differentiated floating leaves of ``args[i]`` (``i`` in ``argnums``) are concatenated into ``theta``
(n,); every other leaf is a constant. The output is reduced to ``<u, f>`` with a fixed random cotangent
``u`` unless it is a scalar. Constants and ``u`` are *arguments* of the compiled kernels, not captured
values, so kernels are cached per (function, structure, shapes) and reused across leaves, modes and
seeds; a check compiles its directional kernel (:mod:`deepcore.gradcheck.kernels`) once: later calls are cut
into or padded to the first call's row count, and the kernel's loop stops after the rows a call uses. Above
``kernels.HOST_N`` numbers the host builds nothing n-sized per row, so fast mode costs its evaluations, whatever
n; ``theta`` and the gradient stay as their leaves (:class:`~deepcore.gradcheck.flat.Flat`), so it copies nothing
n-sized at all. Programs are compiled by :mod:`deepcore.gradcheck.compiling`'s rule; host arrays reach the device
by ``device_put``.
"""
from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.gradcheck.flat import Flat
from deepcore.gradcheck.kernels import GROUP, HOST_BYTES, ROW_BYTES, Kernels, host_directions

MAX_ROWS = 4096   # rows of one directional call (its loop holds only a group's points at a time)

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # f -> {structure: kernels}


@dataclass
class Leaf:
    """One differentiated leaf: its reported path, shape and slice ``[start, start + size)`` of ``theta``."""
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


def key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def put(a, dtype=None):
    """``a`` as a device array of ``dtype`` (default: its own), through the host: ``jnp.asarray`` of a host
    array and ``astype`` compile a program per shape (about 0.1 s each on a CPU, a tenth of a small check)."""
    if isinstance(a, jax.Array) and (dtype is None or a.dtype == dtype):
        return a
    return jax.device_put(np.asarray(a, dtype=dtype))


def cast_tree(tree, dtype):
    def cast(a):
        floating = jnp.issubdtype(np.result_type(a) if not isinstance(a, jax.Array) else a.dtype, jnp.floating)
        return put(a, dtype if floating else None)

    return jax.tree.map(cast, tree)


def _why(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


class Problem:
    """The flattened check: ``theta0`` (n,), ``leaves``, ``skipped`` paths and the compiled kernels."""

    def __init__(self, f, args, argnums, argnames, has_aux, dtype, rng, jit=True):
        self.dtype, self.rng, self.eps = dtype, rng, float(jnp.finfo(dtype).eps)
        args = tuple(cast_tree(a, dtype) for a in args)
        entries, consts, parts, start = self._flatten(args, argnums, argnames)
        others = [i for i in range(len(args)) if i not in entries]
        consts += [args[i] for i in others]   # whole non-differentiated arguments
        self.n, self.consts = start, consts
        self.layout = [(lf.start, lf.shape) for lf in self.leaves]
        self.theta0 = Flat(self.layout, [h for h, _ in parts], [d for _, d in parts])

        out = jax.eval_shape(lambda *a: f(*a), *args)
        out = out[0] if has_aux else out
        outs = [o for o in jax.tree.leaves(out) if jnp.issubdtype(o.dtype, jnp.floating)]
        if not outs:
            raise ValueError("gradcheck: the function has no floating-point output to differentiate")
        low = [o.dtype.name for o in outs if jnp.finfo(o.dtype).eps > self.eps]
        if low:
            warnings.warn(f"gradcheck: the function returns {low[0]} while checking in {jnp.dtype(dtype).name}; "
                          f"it casts internally, so finite differences lose precision", stacklevel=5)
        scalar = len(outs) == 1 and outs[0].shape == ()
        self.u = [] if scalar else [put(rng.standard_normal(o.shape), dtype) for o in outs]
        n_args, n_const = len(args), len(consts) - len(others)

        def f_tree(leaves, consts, u):
            new = [None] * n_args
            for i, (treedef, ents) in entries.items():
                vals = [leaves[a] if kind == "diff" else consts[a] for kind, a, s in ents]
                new[i] = jax.tree_util.tree_unflatten(treedef, vals)
            for j, i in enumerate(others):
                new[i] = consts[n_const + j]
            y = f(*new)
            y = y[0] if has_aux else y
            ys = [o for o in jax.tree.leaves(y) if jnp.issubdtype(o.dtype, jnp.floating)]
            if scalar:
                return ys[0].astype(dtype)
            return sum(jnp.sum(o.astype(dtype) * c) for o, c in zip(ys, u))

        signature = (has_aux, tuple(argnums), str(jnp.dtype(dtype)), scalar, jit, self.n,
                     tuple((i, str(td), tuple(e[0] + str(e[2]) for e in ents)) for i, (td, ents) in entries.items()),
                     tuple(others), jax.tree.structure(out))
        try:
            per_f = _CACHE.setdefault(f, {})
        except TypeError:   # not weak-referenceable: no sharing across calls
            per_f = {}
        self.k = per_f.setdefault(signature, Kernels(f_tree, self.layout, self.n, dtype, jit))
        self.evals = {"f": 0, "grad": 0, "jvp": 0, "hvp": 0}
        self.support = {}
        self.sizes, self.row_sizes = set(), set()   # row counts compiled for the directional and row kernels
        self.progress = None

    def _flatten(self, args, argnums, argnames):
        """Sort the leaves of ``args[argnums]`` into differentiated floats (``self.leaves``, their values ``parts``
        at offsets into theta) and constants (``self.skipped`` paths, their values ``consts``); returns
        ``(entries, consts, parts, n)``, ``entries[i] = (treedef, [("diff" | "const", index, shape)])``, ``parts``
        each leaf as ``(flat float64 host array, the device array)`` (a view of it where the check is in float64)."""
        self.leaves, self.skipped, consts, parts, entries = [], [], [], [], {}
        start = 0
        for i in argnums:
            flat, treedef = jax.tree_util.tree_flatten_with_path(args[i])
            ents = []
            for kp, leaf in flat:
                path = argnames[i] + "".join("/" + key_name(k) for k in kp)
                dt = leaf.dtype
                if jnp.issubdtype(dt, jnp.complexfloating):
                    raise ValueError(f"gradcheck: complex leaf {path} ({dt}) is not supported; "
                                     f"pass its real and imaginary parts as separate real arrays")
                if jnp.issubdtype(dt, jnp.floating):
                    lf = Leaf(path, tuple(leaf.shape), start, int(np.prod(leaf.shape, dtype=np.int64)))
                    self.leaves.append(lf)
                    parts.append((np.asarray(leaf, np.float64).ravel(), leaf))
                    ents.append(("diff", len(self.leaves) - 1, lf.shape))
                    start += lf.size
                else:
                    self.skipped.append(path)
                    ents.append(("const", len(consts), None))
                    consts.append(leaf)
            entries[i] = (treedef, ents)
        return entries, consts, parts, start

    # -------------------------------------------------------------------------------- support

    def supports(self, name: str) -> str:
        """``""`` when ``name`` (grad, jvp, hvp_fr, hvp_rr, vmap) can be taken, else why not (one line).

        Known from a successful kernel call, or found by lowering (tracing alone accepts e.g. a JVP of a
        custom_vjp; lowering refuses it without compiling anything).
        """
        if name not in self.support:
            t, c, u = jax.ShapeDtypeStruct((self.n,), self.dtype), self.consts, self.u   # lowering needs shapes only
            fn = self.k.trace_fns[name] if name != "vmap" else self.k.vmap_probe(
                not self.supports("grad"), not self.supports("jvp"))
            try:
                jax.jit(fn).lower(t, c, u)
                self.support[name] = ""
            except Exception as e:  # the mode does not apply (e.g. forward mode through a custom_vjp)
                self.support[name] = _why(e)
        return self.support[name]

    def try_gradient(self, t) -> Optional[np.ndarray]:
        """The gradient at ``t``, or None when reverse mode cannot be taken (``supports("grad")`` says why)."""
        if self.support.get("grad"):
            return None
        try:
            g = self.gradient(t)
        except Exception as e:
            self.support["grad"] = _why(e)
            return None
        self.support["grad"] = ""
        return g

    # -------------------------------------------------------------------------------- evaluation

    def gradient(self, t) -> np.ndarray:
        self.evals["grad"] += 1
        return np.asarray(self.k.grad(put(t, self.dtype), self.consts, self.u), np.float64)

    def _chunks(self, m: int, cap: int, sizes: set, multiple: int = 1):
        """Row counts to evaluate ``m`` rows with: the first call's count (at most ``cap``, rounded up to a
        multiple of ``multiple``) is compiled, and every later call is cut into, or padded to, that count,
        so a kernel compiles once per check."""
        if not sizes:
            sizes.add(-(-min(m, cap) // multiple) * multiple)
        size = max(sizes)
        return [(min(size, m - i), size) for i in range(0, m, size)]

    def leaves_of(self, t) -> list:
        """The point ``t`` (flat, or a :class:`Flat`) as device arrays of the check's dtype, one per leaf."""
        if isinstance(t, Flat) and t.device is not None:
            return t.device
        t = np.asarray(t)
        return [put(t[a:a + int(np.prod(s, dtype=np.int64))].reshape(s), self.dtype) for a, s in self.layout]

    def directional(self, t, seeds, lo, hi, hs, label=None):
        """Rows ``(seed, lo, hi, h)`` at ``t``: stencil values (m, 8), ``<g, v>`` (m,), JVPs (m,), f(t), g(t) (n,).

        ``<g, v>`` and ``g`` are None where reverse mode cannot be taken, the JVPs where forward mode cannot.
        ``label``: ``(mode, leaf path per row)`` for the progress line.
        """
        t = self.leaves_of(t)
        rows = (np.asarray(seeds, np.uint32), np.asarray(lo, np.int64), np.asarray(hi, np.int64),
                np.asarray(hs, np.float64))
        if self.k.leafwise(self._flags()[2]):
            starts = [a for a, _ in self.layout]
            across = (rows[2] > rows[1]) & (np.searchsorted(starts, rows[1], "right")
                                             != np.searchsorted(starts, rows[2] - 1, "right"))
            if across.any():
                raise ValueError(f"gradcheck: row range [{rows[1][across][0]}, {rows[2][across][0]}) spans leaves; "
                                 f"expected one leaf's range in a check of {self.n} numbers")
        out, i, host = [], 0, self.k.host(self._flags()[2])
        cap = min(MAX_ROWS, HOST_BYTES // (self.n * jnp.dtype(self.dtype).itemsize)) if host else MAX_ROWS
        for used, size in self._chunks(len(rows[0]), max(GROUP, cap), self.sizes, GROUP):
            if self.progress and label:
                self.progress.rows(label[0], label[1][i], i, len(rows[0]))
            chunk = [np.concatenate([a[i:i + used], np.repeat(a[i:i + 1], size - used)]) for a in rows]
            dirs = put(host_directions(*chunk[:3], self.n, self.dtype)) if host else None
            chunk = [put(a) for a in chunk[:3]] + [put(chunk[3], self.dtype)]
            known = all(n in self.support for n in ("grad", "jvp", "vmap"))
            # the first chunk computes f(t) and g(t); it is passed t itself in g's place (shapes only: nothing new)
            fg_in = (put(np.zeros((), self.dtype)), t) if not out else (f0, g)
            call = lambda: (t, fg_in, put(not out), self.consts, self.u, *chunk, put(np.int32(used)),  # noqa: E731
                            dirs if self.k.host(self._flags()[2]) else None)
            work = lambda: self.k.work(rows[1][i:i + used], self._flags()[2])  # noqa: E731  (for the compile rule)
            try:
                res = self.k.directional(*self._flags())(*call(), work=work())
            except Exception:
                if known:
                    raise
                for name in ("grad", "jvp", "vmap"):   # find out which transformation failed, then retry
                    self.supports(name)
                res = self.k.directional(*self._flags())(*call(), work=work())
            for name in ("grad", "jvp", "vmap"):
                self.support.setdefault(name, "")
            out.append([np.asarray(a, np.float64)[:used] for a in res[:3]])
            f0, g = res[3], res[4]
            i += used
        grad, jvp, _ = self._flags()
        self.evals["f"] += 8 * i + 1
        self.evals["jvp"] += i if jvp else 0
        self.evals["grad"] += 1 if grad else 0
        F, vg, jv = (np.concatenate(a) for a in zip(*out))
        f0 = float(f0)
        g = Flat(self.layout, [np.asarray(a, np.float64).ravel() for a in g]) if grad else None
        return F, (vg if grad else None), (jv if jvp else None), f0, g

    def _flags(self):
        return (not self.support.get("grad", ""), not self.support.get("jvp", ""), not self.support.get("vmap", ""))

    def rows(self, name: str, P, V) -> np.ndarray:
        """A host-row kernel (``grad``, ``grad_and_hvp``, ``hvp_rr``) on rows ``(P[i], V[i])`` (second-order checks)."""
        P, V = np.asarray(P, np.float64), np.asarray(V, np.float64)
        kernel, outs, i = self.k.rows(name, self.supports("vmap")), [], 0
        cap = max(1, ROW_BYTES // max(1, 4 * self.n * jnp.dtype(self.dtype).itemsize))
        for used, size in self._chunks(len(P), cap, self.row_sizes):
            Pc, Vc = (put(np.concatenate([A[i:i + used], np.repeat(A[i:i + 1], size - used, 0)]), self.dtype)
                      for A in (P, V))
            outs.append(jax.tree.map(lambda a: np.asarray(a, np.float64)[:used], kernel(Pc, Vc, self.consts, self.u)))
            i += used
        return jax.tree.map(lambda *a: np.concatenate(a), *outs)

    # -------------------------------------------------------------------------------- helpers

    def seeds(self, m: int) -> np.ndarray:
        return self.rng.integers(0, 2 ** 32, m, dtype=np.uint64).astype(np.uint32)

    def directions(self, support: np.ndarray, k: int) -> np.ndarray:
        """``k`` random unit vectors (k, n) supported on the flat indices ``support`` (host side)."""
        V = np.zeros((k, self.n))
        r = self.rng.standard_normal((k, len(support)))
        V[:, support] = r / np.linalg.norm(r, axis=1, keepdims=True)
        return V

    def move(self, t, lo: int, hi: int) -> np.ndarray:
        """A nearby point: the entries ``[lo, hi)`` jittered by about 1% of their scale."""
        t = np.array(t)
        x = t[lo:hi]
        rms = np.sqrt(np.mean(x ** 2)) if len(x) else 0.0
        t[lo:hi] = x + 1e-2 * (np.abs(x) + rms + 1e-2) * self.rng.standard_normal(len(x))
        return t
