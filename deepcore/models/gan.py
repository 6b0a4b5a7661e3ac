"""DCGAN generator and discriminator (Radford et al., 2016), spectral normalisation, class conditioning.

* :func:`dcgan_generator`: ``z (..., z_dim) -> images (..., H, W, C)`` in ``[-1, 1]``:
  dense ``base*base*channels[0]`` - reshape - BN - ReLU - [stride-2 transposed conv - BN - ReLU] ... - stride-2
  transposed conv to ``out_channels`` - tanh (``base=7``, two upsamplings: 28x28).
* :func:`dcgan_discriminator`: ``images (..., H, W, C) -> logits (...)``: [conv k4 s2 - LeakyReLU(0.2)] ... -
  dense 1, optionally spectrally normalised (:func:`SpectralNorm`).
* ``num_classes``: both take ``(x, labels)`` with int ``labels (...)``: the generator concatenates a learned
  label embedding to ``z``; the discriminator is a projection discriminator (Miyato & Koyama, 2018),
  ``logit = dense(h) + <embed(label), h>`` for the features ``h`` of the image.
* :func:`PhaseConvTranspose`: a stride-``s`` "SAME" transposed convolution computed as ``s*s`` stride-1
  convolutions, one per output phase, interleaved. Same parameters and results as
  :func:`deepcore.layers.ConvTranspose`; on XLA:CPU several times faster (its transposed convolutions
  are slow, jax-ml/jax#23783).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from deepcore import initializers
from deepcore import layers as L
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, output_spec, param_dtype_for

# ----------------------------------------------------------------------------- upsampling


def _same_pad_a(k: int, s: int) -> int:
    """Low-side padding of the stride-dilated input in ``lax.conv_transpose(..., "SAME")``."""
    return k - 1 if s > k - 1 else math.ceil((k + s - 2) / 2)


def _phase_taps(k: int, s: int):
    """For each output phase ``a`` (of ``s``): the kernel taps it uses and the input offset of the first.

    Output ``y[s*i + a] = sum_t w[t] * x[i + (a + t - pad) / s]`` over taps ``t`` with ``a + t - pad`` divisible
    by ``s`` (the dilated-input form of a transposed convolution)."""
    pad = _same_pad_a(k, s)
    out = []
    for a in range(s):
        taps = [t for t in range(k) if (a + t - pad) % s == 0]
        out.append((taps, (a + taps[0] - pad) // s))
    return out


def PhaseConvTranspose(features: int, kernel_size: int = 4, *, strides: int = 2, use_bias: bool = True,
                       w_init=initializers.glorot_uniform, b_init=initializers.zeros, param_dtype=None,
                       dtype=None) -> Layer:
    """2D transposed convolution, ``"SAME"`` padding: ``(..., H, W, C) -> (..., s*H, s*W, features)``.

    ``w: (k, k, C, features)``, ``b: (features,)``, equal to :func:`deepcore.layers.ConvTranspose2D` with
    ``padding="SAME"`` for the same parameters. Each of the ``s*s`` output phases ``(a, b)`` is a stride-1
    convolution of the input with the taps of ``w`` that land on it; the phases are interleaved
    (depth-to-space). Needs ``kernel_size >= strides``.
    """
    k, s = int(kernel_size), int(strides)
    if k < s:
        raise ValueError(f"PhaseConvTranspose: kernel_size={k} must be >= strides={s}")
    phases = _phase_taps(k, s)
    dn = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))

    def run(x, w):
        rows = []
        for taps_a, lo_a in phases:
            cols = []
            for taps_b, lo_b in phases:
                kern = w[taps_a[0]:taps_a[-1] + 1:s, taps_b[0]:taps_b[-1] + 1:s]
                pad = ((-lo_a, lo_a + len(taps_a) - 1), (-lo_b, lo_b + len(taps_b) - 1))
                cols.append(lax.conv_general_dilated(x, kern, (1, 1), pad, dimension_numbers=dn))
            rows.append(jnp.stack(cols, 3))                      # (B, H, W, s_b, F)
        y = jnp.stack(rows, 3)                                   # (B, H, W, s_a, s_b, F)
        b, h, w_, _, _, f = y.shape
        return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w_ * s, f)

    def init(key, spec):
        if len(spec.shape) < 3:
            raise ShapeError(f"expected input of shape (..., H, W, C) with at least 3 dims, got {tuple(spec.shape)}")
        pdt = param_dtype_for(spec.dtype, param_dtype)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (k, k, spec.shape[-1], features), pdt)}
        if use_bias:
            params["b"] = b_init(kb, (features,), pdt)
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        c_in = params["w"].shape[-2]
        if x.ndim < 3 or x.shape[-1] != c_in:
            raise ShapeError(f"expected input with {c_in} channels (..., H, W, {c_in}), got {tuple(x.shape)}")
        cdt = compute_dtype_for(x.dtype, dtype)
        p = cast(params, cdt)
        lead = x.shape[:-3]
        y = run(x.astype(cdt).reshape((math.prod(lead),) + x.shape[-3:]), p["w"])
        y = y.reshape(lead + y.shape[1:])
        if use_bias:
            y = y + p["b"]
        return y, state

    return layer("conv_transpose", init, apply)


# ----------------------------------------------------------------------------- spectral normalisation


def _normalize(v, eps):
    return v * lax.rsqrt(jnp.sum(v * v) + eps)


def spectral_normalize(w, u, *, n_iter: int = 1, eps: float = 1e-12):
    """``(w / sigma, u_new, sigma)``: ``sigma`` estimates the top singular value of ``w`` as a
    ``(prod(w.shape[:-1]), w.shape[-1])`` matrix by ``n_iter`` power iterations from ``u: (w.shape[-1],)``.

    ``u`` and ``v`` are constants for differentiation (Miyato et al., 2018); the gradient flows through ``w``
    in ``w / sigma``. ``n_iter=0`` uses ``u`` as it is (evaluation)."""
    w2 = w.reshape(-1, w.shape[-1])
    wf = lax.stop_gradient(w2).astype(jnp.promote_types(w.dtype, jnp.float32))
    u = u.astype(wf.dtype)
    for _ in range(n_iter):
        u = _normalize(wf.T @ _normalize(wf @ u, eps), eps)
    v = _normalize(wf @ u, eps)
    u, v = lax.stop_gradient(u), lax.stop_gradient(v)
    sigma = jnp.einsum("i,ij,j->", v.astype(w.dtype), w2, u.astype(w.dtype))
    return w / sigma, u, sigma


def SpectralNorm(inner: Layer, *, n_iter: int = 1, eps: float = 1e-12) -> Layer:
    """Wrap a layer with a weight ``params["w"]`` (Dense, Conv, ...) so it uses ``w / sigma(w)``.

    params: the inner layer's; state ``{"u": (w.shape[-1],)}``, the power-iteration vector, carried
    explicitly: ``train=True`` runs ``n_iter`` iterations and returns the updated ``u``; ``train=False`` uses
    the stored ``u`` and returns the state unchanged."""

    def init(key, spec):
        k_inner, k_u = jax.random.split(key)
        out, params, state = inner.init(k_inner, spec)
        if "w" not in params or state:
            raise ValueError(f"SpectralNorm: expected a stateless layer with a weight 'w', got {inner.name}")
        u = _normalize(jax.random.normal(k_u, (params["w"].shape[-1],), jnp.float32), eps)
        return out, params, {"u": u.astype(params["w"].dtype)}

    def apply(params, state, x, *, key=None, train=False):
        w, u, _ = spectral_normalize(params["w"], state["u"], n_iter=n_iter if train else 0, eps=eps)
        y, _ = inner.apply(dict(params, w=w), {}, x, key=key, train=train)
        return y, ({"u": u.astype(state["u"].dtype)} if train else state)

    return layer(inner.name, init, apply)


# ----------------------------------------------------------------------------- conditioning


# ----------------------------------------------------------------------------- models


def dcgan_generator(z_dim: int = 64, *, channels: Sequence[int] = (128, 64), base: int = 7, out_channels: int = 1,
                    kernel_size: int = 4, batch_norm: bool = True, upsample: str = "phase",
                    num_classes: Optional[int] = None, embed_dim: int = 32, param_dtype=None, dtype=None) -> Layer:
    """DCGAN generator ``z (..., z_dim) -> (..., H, W, out_channels)`` in ``[-1, 1]``, ``H = base * 2**len(channels)``.

    dense ``base*base*channels[0]`` - reshape ``(base, base, channels[0])`` - [BN] - ReLU, then for each later
    entry of ``channels`` a stride-2 transposed conv - [BN] - ReLU, and a last stride-2 transposed conv to
    ``out_channels`` - tanh. ``upsample``: ``"phase"`` (:func:`PhaseConvTranspose`) or ``"transpose"``
    (``lax.conv_transpose``); equal results. ``batch_norm=False`` with the defaults is benchmark workload W5.
    ``num_classes``: the input is ``(z, labels)``, int ``labels (...)``; an ``embed_dim`` label embedding is
    concatenated to ``z`` (params ``{"label_embed": ..., "net": ...}``).
    """
    if upsample not in ("phase", "transpose"):
        raise ValueError(f"upsample must be 'phase' or 'transpose', got {upsample!r}")
    kw = dict(param_dtype=param_dtype, dtype=dtype)

    def up(features):
        if upsample == "phase":
            return PhaseConvTranspose(features, kernel_size, strides=2, **kw)
        return L.ConvTranspose2D(features, kernel_size, strides=2, padding="SAME", **kw)

    def norm_relu():
        return [L.BatchNorm(**kw), L.Relu] if batch_norm else [L.Relu]

    c0 = channels[0]
    stack = [L.Dense(base * base * c0, **kw), L.Lambda(lambda x: x.reshape(x.shape[:-1] + (base, base, c0)), "reshape"),
             *norm_relu()]
    for c in channels[1:]:
        stack += [up(c), *norm_relu()]
    stack += [up(out_channels), L.Tanh]
    net = L.serial(*stack)
    if num_classes is None:
        return net
    embed = L.Embedding(num_classes, embed_dim, **kw)

    def join(params, z, labels):
        e, _ = embed.apply(params["label_embed"], {}, labels)
        return jnp.concatenate([z, e.astype(z.dtype)], axis=-1)

    def init(key, specs):
        z_spec, y_spec = specs
        k_e, k_n = jax.random.split(key)
        _, pe, _ = embed.init(k_e, y_spec)
        joined = jax.eval_shape(lambda z, y: join({"label_embed": pe}, z, y), z_spec, y_spec)
        out, pn, sn = net.init(k_n, joined)
        return out, {"label_embed": pe, "net": pn}, ({"net": sn} if sn else {})

    def apply(params, state, z, labels, *, key=None, train=False):
        y, s = net.apply(params["net"], state.get("net", {}), join(params, z, labels), key=key, train=train)
        return y, ({"net": s} if s else {})

    return layer("conditional_generator", init, apply, pair_x_rank=1)


def dcgan_discriminator(channels: Sequence[int] = (64, 128), *, kernel_size: int = 4, negative_slope: float = 0.2,
                        spectral_norm: bool = False, num_classes: Optional[int] = None, param_dtype=None,
                        dtype=None) -> Layer:
    """DCGAN discriminator ``images (..., H, W, C) -> logits (...)`` (float, one per image).

    [conv ``kernel_size`` stride 2 "SAME" - LeakyReLU(``negative_slope``)] per entry of ``channels``, flatten,
    dense 1. params ``{"features": ..., "head": ...}``. ``spectral_norm``: every conv and the dense are wrapped
    in :func:`SpectralNorm` (state: their power-iteration vectors). ``num_classes``: the input is
    ``(images, labels)`` and the logit gains ``<embed(label), h>`` (projection discriminator; params
    ``"label_embed"``), ``h`` the flattened features.
    """
    kw = dict(param_dtype=param_dtype, dtype=dtype)
    sn = SpectralNorm if spectral_norm else (lambda lay: lay)
    stack = []
    for c in channels:
        stack += [sn(L.Conv2D(c, kernel_size, strides=2, padding="SAME", **kw)), L.LeakyRelu(negative_slope)]
    stack.append(L.Flatten(-3))
    features, head = L.serial(*stack), sn(L.Dense(1, **kw))
    if num_classes is None:
        return L.serial({"features": features, "head": head, "squeeze": L.Lambda(lambda x: x[..., 0], "squeeze")})

    def init(key, specs):
        x_spec, y_spec = specs
        k_f, k_h, k_e = jax.random.split(key, 3)
        h_spec, pf, sf = features.init(k_f, x_spec)
        _, ph, sh = head.init(k_h, h_spec)
        embed = L.Embedding(num_classes, h_spec.shape[-1], w_init=initializers.normal(0.02), **kw)
        _, pe, _ = embed.init(k_e, y_spec)
        params = {"features": pf, "head": ph, "label_embed": pe}
        state = {k: v for k, v in (("features", sf), ("head", sh)) if v}
        out = jax.ShapeDtypeStruct(tuple(x_spec.shape[:-3]), h_spec.dtype)
        return out, params, state

    def apply(params, state, x, labels, *, key=None, train=False):
        h, sf = features.apply(params["features"], state.get("features", {}), x, key=key, train=train)
        logit, sh = head.apply(params["head"], state.get("head", {}), h, key=key, train=train)
        e = jnp.take(params["label_embed"]["w"], labels, axis=0, mode="clip").astype(h.dtype)
        new_state = {k: v for k, v in (("features", sf), ("head", sh)) if v}
        return logit[..., 0] + jnp.sum(e * h, axis=-1), new_state

    return layer("projection_discriminator", init, apply, pair_x_rank=3)
