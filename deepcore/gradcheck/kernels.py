"""The compiled kernels of one checked function: the directional kernel and the host-row kernels.

The directional kernel evaluates rows ``(seed, lo, hi, h)`` at a point given as its list of leaves: a unit
direction ``v`` (a counter hash of ``seed``) supported on the flat indices ``[lo, hi)``; per row the eight stencil
values ``f(t + c h v)``, ``<g, v>`` and the JVP ``<u, J v>``, plus ``f(t)`` and the gradient ``g`` (computed by
the first chunk of a call only); rows run in a loop of :data:`GROUP` vmapped rows up to the count a call uses.
Three forms, same numbers: a small check (n <= :data:`HOST_N`) passes the directions in, drawn by numpy
(:func:`host_directions`: no hash to compile); a larger one draws them in the kernel (:func:`direction`); one
whose rows run singly (too large to vmap 4) switches on the row's leaf (:func:`_leafwise`: O(leaf) per row; one
branch per large leaf, one shared by the small ones; a leaf's stencil is evaluated along its line,
:func:`.line.along`, so a leaf that enters linearly forms no point).
Host-row kernels (second order) take rows of flat points.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.gradcheck import compiling
from deepcore.gradcheck.finite import STENCIL
from deepcore.gradcheck.line import along

ROW_BYTES = 2 ** 28   # memory for one chunk of rows (directions, stencil points, tangents)
MAP_BYTES = 2 ** 26   # above this, the 8 stencil points of a row are evaluated one after another
GROUP = 4             # rows vmapped together per loop step (a leaf's rows in fast mode, a bisection step)
HOST_N = 2 ** 16      # vmapped rows of a check of at most this many numbers take directions drawn on the host
HOST_BYTES = 2 ** 26  # ... in chunks of at most this many bytes of directions
SHARED_N = 2 ** 20    # the small leaves of a check whose rows run singly share one switch branch up to this many numbers


def _uniform(xp, i, seed, dtype):
    """Uniform [-1, 1) numbers from a murmur3-finalised counter hash of the uint32 indices ``i`` and ``seed``,
    with ``xp`` = ``jax.numpy`` (in a kernel) or ``numpy`` (on the host): the same numbers either way."""
    u32 = xp.uint32
    x = i + seed * u32(0x9E3779B9)
    for shift, mul in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        x = (x ^ (x >> u32(shift))) * u32(mul)
    x = x ^ (x >> u32(16))
    # (x + 1/2) 2^-23 - 1 for the top 24 bits x, as one multiply-add (exact in float64: every step fits 53 bits)
    return (x >> u32(8)).astype(dtype) * (2.0 ** -23) + (2.0 ** -24 - 1.0)


def _draw(seed, lo, hi, start, size, dtype):
    """The flat entries ``[start, start + size)`` of the unnormalised direction: a murmur3-finalised counter hash
    of ``seed``, uniform in [-1, 1), zero outside ``[lo, hi)``; shape (size,)."""
    i = jnp.arange(size, dtype=jnp.uint32) + jnp.uint32(start)
    v = _uniform(jnp, i, seed.astype(jnp.uint32), dtype)
    lo = lo.astype(jnp.uint32)
    return jnp.where(i - lo < hi.astype(jnp.uint32) - lo, v, 0.0)   # lo <= i < hi, one unsigned compare


def host_directions(seeds, lo, hi, n: int, dtype) -> np.ndarray:
    """:func:`_draw`'s directions computed by numpy, normalised in float64: (m, n) in ``dtype``. Passed to the
    kernel of a small check, they keep the hash out of its program (a third of its compile, 60% of its HLO)."""
    i = np.arange(n, dtype=np.uint32)[None, :]
    v = _uniform(np, i, np.asarray(seeds, np.uint32)[:, None], dtype)
    v = np.where((i >= np.asarray(lo)[:, None]) & (i < np.asarray(hi)[:, None]), v.astype(np.float64), 0.0)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(dtype)


def direction(seed, lo, hi, layout, dtype, unit=True):
    """A unit vector (``unit=False``: not normalised) supported on the flat indices ``[lo, hi)``, as one array per
    leaf of ``layout`` (``(start, shape)`` pairs), drawn by :func:`_draw`."""
    vs = []
    for start, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        draw = lambda start=start, size=size: _draw(seed, lo, hi, start, size, dtype)  # noqa: E731
        # only the leaves the range touches are hashed (a real branch where rows are not vmapped)
        touched = (lo < start + size) & (hi > start)
        vs.append(jax.lax.cond(touched, draw, lambda: jnp.zeros(size, dtype)).reshape(shape))
    if not unit:
        return vs
    norm = jnp.sqrt(sum(jnp.sum(v * v) for v in vs))
    return [v / norm for v in vs]


def _inner(size, dtype):
    """How a row's 8 stencil points of ``size`` changed numbers are evaluated: vmapped, or one after another
    above :data:`MAP_BYTES`."""
    return jax.vmap if 8 * size * jnp.dtype(dtype).itemsize <= MAP_BYTES else (
        lambda fn: lambda xs: jax.lax.map(fn, xs))


def small_leaves(layout) -> list:
    """The leaves of ``layout`` that share one branch of :func:`_leafwise`: smallest first while their total stays
    within :data:`SHARED_N` numbers (a bias, a norm's scale: one branch for all of them instead of one each)."""
    sizes = sorted((int(np.prod(s, dtype=np.int64)), j) for j, (_, s) in enumerate(layout))
    out, total = [], 0
    for size, j in sizes:
        if total + size > SHARED_N:
            break
        out.append(j)
        total += size
    return sorted(out) if len(out) > 1 else []


def _leafwise(f, layout, dtype, t, g, c, u, coeffs, zero, jvp):
    """One unvmapped row as a ``lax.switch``: the branch of the leaf holding ``[lo, hi)`` draws, forms points and
    takes the JVP on that leaf only (the others enter ``f`` unchanged, their tangents are symbolic zeros), so a
    row costs O(its leaf's size) besides its evaluations. The :func:`small_leaves` share one branch that moves
    them all (only the touched one is drawn; the others move by zero), so the program holds one copy of ``f``
    per large leaf plus one, not one per leaf. A row's range lies in one leaf."""
    starts = jnp.asarray([a for a, _ in layout[1:]], jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    sizes = [int(np.prod(s, dtype=np.int64)) for _, s in layout]
    shared = small_leaves(layout)

    def branch(js):   # the row moves the leaves js (one, or the shared small ones)
        size = sum(sizes[j] for j in js)

        def go(seed, a, b, h):
            if len(js) == 1:
                vs = [_draw(seed, a, b, layout[js[0]][0], size, dtype).reshape(layout[js[0]][1])]
            else:   # only the touched leaf is hashed: a real branch, the row is not vmapped
                vs = direction(seed, a, b, [layout[j] for j in js], dtype, unit=False)
            # the direction is vs / |vs|: the norm goes into the step, the JVP and <g, v> (linear in v) instead
            # of a pass over the leaf to divide it
            scale = 1.0 / jnp.sqrt(sum(jnp.sum(v * v) for v in vs))

            def fj(*ss):
                new = list(t)
                for j, sj in zip(js, ss):
                    new[j] = sj
                return f(new, c, u)

            if len(js) == 1:   # one leaf: its linear uses are not formed as points (:mod:`.line`)
                on_line = along(fj, t[js[0]], vs[0])
                F = _inner(size, dtype)(lambda cc: on_line(cc * h * scale))(coeffs)
            else:
                F = _inner(size, dtype)(lambda cc: fj(*[t[j] + (cc * h * scale) * v for j, v in zip(js, vs)]))(coeffs)
            jv = jax.jvp(fj, tuple(t[j] for j in js), tuple(vs))[1] * scale if jvp else zero
            return F, sum(jnp.vdot(g[j], v) for j, v in zip(js, vs)) * scale, jv
        return go

    groups = [[j] for j in range(len(layout)) if j not in shared] + ([shared] if shared else [])
    index = jnp.asarray([next(i for i, js in enumerate(groups) if j in js) for j in range(len(layout))], jnp.int32)
    branches = [branch(js) for js in groups]
    return lambda seed, a, b, h: jax.lax.switch(index[jnp.sum(a >= starts.astype(a.dtype))], branches,
                                                seed, a, b, h)


class Kernels:
    """The compiled kernels of one (function, structure): one executable per shape (:mod:`.compiling`)."""

    def __init__(self, f_tree, layout, n, dtype, jit):
        self.f_tree, self.layout, self.n, self.dtype = f_tree, layout, n, dtype
        split = lambda t: [t[a:a + int(np.prod(s, dtype=np.int64))].reshape(s) for a, s in layout]  # noqa: E731
        self.split = split
        f_flat = self.f = lambda theta, c, u: f_tree(split(theta), c, u)
        self.J = (lambda fn: compiling.jit(fn, n)) if jit else (lambda fn: lambda *a, work=None: fn(*a))
        grad = jax.grad(f_flat)
        self._vg_tree = jax.value_and_grad(f_tree)
        self.grad = self.J(grad)
        self._dir, self._rows = {}, {}
        self.trace_fns = {
            "grad": grad,
            "jvp": lambda t, c, u: jax.jvp(lambda s: f_flat(s, c, u), (t,), (t,)),
            "hvp_fr": lambda t, c, u: jax.jvp(lambda s: grad(s, c, u), (t,), (t,)),
            "hvp_rr": lambda t, c, u: jax.grad(lambda s: jnp.vdot(grad(s, c, u), t))(t),
        }

    def vmap_probe(self, grad: bool, jvp: bool):
        one = jnp.zeros(GROUP, jnp.uint32)
        return lambda t, c, u: self._directional(grad, jvp, True)(self.split(t), (t[0], self.split(t)), True, c, u,
                                                                   one, one, one + 1, t[:1].repeat(GROUP), GROUP)

    def group(self, batched: bool) -> int:
        """Rows evaluated together (vmapped) per loop step: :data:`GROUP`, or 1 where they do not fit memory."""
        return GROUP if batched and GROUP * 11 * self.n * jnp.dtype(self.dtype).itemsize <= ROW_BYTES else 1

    def host(self, batched: bool) -> bool:
        """Whether the kernel takes its rows' directions from :func:`host_directions` (vmapped rows, small n)."""
        return self.group(batched) > 1 and self.n <= HOST_N

    def leafwise(self, batched: bool) -> bool:
        """Whether rows run one at a time through :func:`_leafwise` (each row's range must lie in one leaf)."""
        return self.group(batched) == 1 and len(self.layout) > 1

    def work(self, lo, batched: bool):
        """The numbers that rows starting at the flat offsets ``lo`` touch in all, for the compile rule: each row
        its leaf (its branch's leaves) in the leafwise kernel; None (the check's size decides) otherwise."""
        if not self.leafwise(batched):
            return None
        sizes = np.asarray([int(np.prod(s, dtype=np.int64)) for _, s in self.layout])
        shared = small_leaves(self.layout)
        sizes[shared] = sizes[shared].sum() if shared else 0
        leaf = np.searchsorted([a for a, _ in self.layout], np.asarray(lo), "right") - 1
        return int(sizes[leaf].sum())

    def _directional(self, grad: bool, jvp: bool, batched: bool):
        """The kernel over leaf lists ``t`` and ``fg_in = (f(t), g(t))`` (no flat vector: slicing one would copy
        every leaf). The call's first chunk (``need_g``) computes ``f(t)`` and ``g(t)`` together, one
        ``value_and_grad`` (no separate forward pass of ``f(t)`` to compile); later chunks pass them through.

        Rows go through a loop of :meth:`group`-row steps up to ``used`` (a run-time value): a call with
        fewer rows than the compiled count (kink moves, bisection) costs its own rows, not the padding."""
        f, layout, dtype, G = self.f_tree, self.layout, self.dtype, self.group(batched)
        coeffs = jnp.asarray(STENCIL, dtype)
        zero = jnp.zeros((), dtype)

        def kernel(t, fg_in, need_g, c, u, seeds, lo, hi, hs, used, dirs=None):
            if grad:
                f0, g = jax.lax.cond(need_g, lambda: self._vg_tree(t, c, u), lambda: fg_in)
            else:
                f0, g = f(t, c, u), fg_in[1]

            def row(seed, a, b, h, d=None):   # vmapped rows: every leaf's direction and point (a switch runs all)
                v = direction(seed, a, b, layout, dtype) if d is None else self.split(d)
                F = _inner(self.n, dtype)(lambda cc: f([ti + (cc * h) * vi for ti, vi in zip(t, v)], c, u))(coeffs)
                jv = jax.jvp(lambda s: f(s, c, u), (t,), (v,))[1] if jvp else zero
                return F, sum(jnp.vdot(gi, vi) for gi, vi in zip(g, v)), jv

            if self.leafwise(batched):
                row = _leafwise(f, layout, dtype, t, g, c, u, coeffs, zero, jvp)

            def step(i, acc):
                part = [jax.lax.dynamic_slice_in_dim(a, i * G, G) for a in (seeds, lo, hi, hs, dirs) if a is not None]
                outs = jax.vmap(row)(*part) if G > 1 else [o[None] for o in row(*[a[0] for a in part])]
                return [jax.lax.dynamic_update_slice_in_dim(A, o.astype(A.dtype), i * G, 0) for A, o in zip(acc, outs)]

            m = seeds.shape[0]
            acc = [jnp.zeros((m, len(STENCIL)), dtype), jnp.zeros(m, dtype), jnp.zeros(m, dtype)]
            F, vg, jv = jax.lax.fori_loop(0, (used + G - 1) // G, step, acc)
            return F, vg, jv, f0, g

        return kernel

    def directional(self, grad: bool, jvp: bool, batched: bool):
        key = (grad, jvp, batched)
        if key not in self._dir:
            self._dir[key] = self.J(self._directional(*key))
        return self._dir[key]

    def compiled(self, key, build):
        """The kernel ``build()`` compiled by the rule, built once per ``key`` (row kernels, second-order stats)."""
        if key not in self._rows:
            self._rows[key] = self.J(build())
        return self._rows[key]

    def rows(self, name: str, no_vmap: str):
        def build():
            grad = jax.grad(self.f)
            fns = {"grad": lambda p, v, c, u: grad(p, c, u),                                   # g(p)
                   "grad_and_hvp": lambda p, v, c, u: jax.jvp(lambda s: grad(s, c, u), (p,), (v,)),  # (g(p), H v)
                   "hvp_rr": lambda p, v, c, u: jax.grad(lambda s: jnp.vdot(grad(s, c, u), v))(p)}
            fn = fns[name]
            if not no_vmap:
                return jax.vmap(fn, in_axes=(0, 0, None, None))
            return lambda P, V, c, u: jax.lax.map(lambda pv: fn(pv[0], pv[1], c, u), (P, V))
        return self.compiled((name, not no_vmap), build)
