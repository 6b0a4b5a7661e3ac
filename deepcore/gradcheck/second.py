"""The numbers second-order checks are judged by: per direction and leaf, maxima of the finite-difference estimates
of ``H v`` and of their disagreement with the Hessian-vector products.

:func:`stats` returns, for ``k`` directions: ``mag`` (k,), the largest gradient entry seen (the rounding scale),
and per leaf path ``R``, ``Rs``, ``RRs``, ``F``, ``B``, ``FB`` (k,), the largest ``|R|``, ``|Rs|``, ``|R - Rs|``,
``|fwd|``, ``|bwd|``, ``|fwd - bwd|`` on the leaf (:func:`~deepcore.gradcheck.finite.estimates`), and per kind
(``hvp_rr``, ``hvp_fr``) ``(d, arg, an)``: the largest ``|an - R|``, its flat index in the leaf, the largest ``|an|``.

A small check (at most ``kernels.HOST_N`` numbers) forms its points on the host from Gaussian directions and
evaluates them as rows of flat vectors (:meth:`Problem.rows`). A large one would build ``8 k + 1`` vectors of its
size on the host (1.4 GB for 10M float64 parameters, with the copies to the device and back): it draws each
direction in a kernel instead (:func:`~deepcore.gradcheck.kernels.direction`), accumulates the estimates over the
eight stencil points in a loop, and returns only the maxima.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.gradcheck.finite import STENCIL, estimates
from deepcore.gradcheck.kernels import HOST_N, direction
from deepcore.gradcheck.problem import put

KEYS = ("R", "Rs", "RRs", "F", "B", "FB")


def _weights(h):
    """Rows R, Rs, fwd, bwd of :func:`~deepcore.gradcheck.finite.estimates` as weights of the 8 stencil values
    (4, 8) and of the centre value (4,): each estimate is ``w @ G + w0 * g0``."""
    s = h / 10
    w = np.zeros((4, len(STENCIL)))
    w[0, :4] = [4 / (6 * h), -4 / (6 * h), -1 / (12 * h), 1 / (12 * h)]
    w[1, 4:] = [4 / (6 * s), -4 / (6 * s), -1 / (12 * s), 1 / (12 * s)]
    w[2, [0, 2]] = [4 / (2 * h), -1 / (2 * h)]
    w[3, [1, 3]] = [-4 / (2 * h), 1 / (2 * h)]
    return w, np.array([0.0, 0.0, -3 / (2 * h), 3 / (2 * h)])


def _kernel(k, kinds):
    """The device form for the kernels ``k`` of one check: ``(t, seed, h, w, w0, c, u) -> (mag, per, hv)`` of one
    direction (``w``, ``w0``: :func:`_weights` of its step ``h``)."""
    f, layout, dtype, n = k.f_tree, k.layout, k.dtype, k.n
    grad = jax.grad(f)
    coeffs = jnp.asarray(STENCIL, dtype)
    largest = lambda g: jnp.max(jnp.stack([jnp.max(jnp.abs(gi)) for gi in g if gi.size]))  # noqa: E731

    def kernel(t, seed, h, w, w0, c, u):
        v = direction(seed, jnp.zeros((), jnp.uint32), jnp.asarray(n, jnp.uint32), layout, dtype)
        g0 = grad(t, c, u)
        init = ([[w0[e] * gi for gi in g0] for e in range(4)], largest(g0))

        def step(i, acc):
            est, mag = acc
            G = grad([ti + (coeffs[i] * h) * vi for ti, vi in zip(t, v)], c, u)
            est = [[a + w[e, i] * gi for a, gi in zip(est[e], G)] for e in range(4)]
            return est, jnp.maximum(mag, largest(G))

        (R, Rs, fwd, bwd), mag = jax.lax.fori_loop(0, len(STENCIL), step, init)
        an = {}
        if "hvp_rr" in kinds:
            an["hvp_rr"] = jax.grad(lambda s: sum(jnp.vdot(gi, vi) for gi, vi in zip(grad(s, c, u), v)))(t)
        if "hvp_fr" in kinds:
            an["hvp_fr"] = jax.jvp(lambda s: grad(s, c, u), (t,), (v,))[1]
        inf = lambda a: jnp.max(jnp.abs(a)) if a.size else jnp.zeros((), dtype)  # noqa: E731
        per = [jnp.stack([inf(a) for a in (R[i], Rs[i], R[i] - Rs[i], fwd[i], bwd[i], fwd[i] - bwd[i])])
               for i in range(len(layout))]
        hv = {name: [(inf(a[i] - R[i]), jnp.argmax(jnp.abs(a[i] - R[i]).ravel()) if a[i].size else 0, inf(a[i]))
                     for i in range(len(layout))] for name, a in an.items()}
        return mag, per, hv

    return kernel


def _device(P, t, k, hs, kinds):
    kernel = P.k.compiled(("second", tuple(kinds)), lambda: _kernel(P.k, kinds))
    leaves = P.leaves_of(t)
    out = {"mag": np.zeros(k)}
    for lf in P.leaves:
        out[lf.path] = {name: np.zeros(k) for name in KEYS}
        for name in kinds:
            out[lf.path][name] = (np.zeros(k), np.zeros(k, np.int64), np.zeros(k))
    for r, seed in enumerate(P.seeds(k)):
        w, w0 = _weights(hs[r])
        mag, per, hv = kernel(leaves, put(np.uint32(seed)), put(hs[r], P.dtype), put(w, P.dtype),
                              put(w0, P.dtype), P.consts, P.u)
        out["mag"][r] = float(mag)
        for i, lf in enumerate(P.leaves):
            for name, x in zip(KEYS, np.asarray(per[i], np.float64)):
                out[lf.path][name][r] = x
            for name in kinds:
                d, arg, a = hv[name][i]
                out[lf.path][name][0][r], out[lf.path][name][1][r], out[lf.path][name][2][r] = (
                    float(d), int(arg), float(a))
    return out


def _host(P, t, k, hs, kinds):
    t = np.asarray(t)
    V = P.directions(np.arange(P.n), k)
    pts = t[None, None, :] + (STENCIL[None, :, None] * hs[:, None, None]) * V[:, None, :]
    # gradient values come from the fwd-over-rev kernel where it works (one compile fewer), the centre included
    gk = "grad_and_hvp" if "hvp_fr" in kinds else "grad"
    X = np.concatenate([pts.reshape(-1, P.n), t[None]])
    G = P.rows(gk, X, np.zeros_like(X))
    G = G[0] if gk == "grad_and_hvp" else G
    g0, G = G[-1], G[:-1].reshape(k, len(STENCIL), P.n)
    R, Rs, fwd, bwd = estimates(G, g0, hs)
    T = np.broadcast_to(t, V.shape)
    an = {n: (P.rows("hvp_rr", T, V) if n == "hvp_rr" else P.rows("grad_and_hvp", T, V)[1]) for n in kinds}
    out = {"mag": np.maximum(np.abs(G).max(axis=(1, 2)), np.abs(g0).max())}   # rounding: whole-gradient scale
    for lf in P.leaves:
        inf = lambda a: np.abs(a[:, lf.sl]).max(axis=1)  # noqa: E731
        out[lf.path] = dict(zip(KEYS, (inf(R), inf(Rs), inf(R - Rs), inf(fwd), inf(bwd), inf(fwd - bwd))))
        for name in kinds:
            d = np.abs(an[name][:, lf.sl] - R[:, lf.sl])
            out[lf.path][name] = (d.max(axis=1), d.argmax(axis=1), inf(an[name]))
    return out


def stats(P, t, k, hs, kinds) -> dict:
    """The maxima second-order checks of ``k`` directions at ``t`` with steps ``hs`` (k,) are judged by (above)."""
    return (_device if P.n > HOST_N else _host)(P, t, k, hs, kinds)
