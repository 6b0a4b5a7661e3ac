"""DCGAN generator and discriminator (Radford et al., 2016) with class conditioning.

* :func:`dcgan_generator`: ``z (..., z_dim) -> images (..., H, W, C)`` in ``[-1, 1]``:
  dense ``base*base*channels[0]`` - reshape - BN - ReLU - [stride-2 transposed conv - BN - ReLU] ... - stride-2
  transposed conv to ``out_channels`` - tanh (``base=7``, two upsamplings: 28x28).
* :func:`dcgan_discriminator`: ``images (..., H, W, C) -> logits (...)``: [conv k4 s2 - LeakyReLU(0.2)] ... -
  dense 1, optionally spectrally normalised (:func:`deepcore.layers.SpectralNorm`).
* ``num_classes``: both take ``(x, labels)`` with int ``labels (...)``: the generator concatenates a learned
  label embedding to ``z``; the discriminator is a projection discriminator (Miyato & Koyama, 2018),
  ``logit = dense(h) + <embed(label), h>`` for the features ``h`` of the image.

The generic layers live in :mod:`deepcore.layers` (:func:`~deepcore.layers.PhaseConvTranspose`,
:func:`~deepcore.layers.SpectralNorm`, :func:`~deepcore.layers.spectral_normalize`); they are re-exported here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore import layers as L
from deepcore.core import Layer, ShapeError, as_spec, layer
from deepcore.layers.logical import logical_axes
from deepcore.layers.phase_conv import PhaseConvTranspose
from deepcore.layers.spectral_norm import SpectralNorm, spectral_normalize

__all__ = ["dcgan_generator", "dcgan_discriminator", "PhaseConvTranspose", "SpectralNorm", "spectral_normalize"]

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

    axes = lambda p: {"label_embed": embed.axes, "net": logical_axes(net, params=p["net"])}   # noqa: E731
    return layer("conditional_generator", init, apply, pair_x_rank=1, axes=axes)


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

    def axes(p):   # logical axis names (deepcore.layers.logical)
        return {"features": logical_axes(features, params=p["features"]), "head": logical_axes(head, params=p["head"]),
                "label_embed": {"w": ("vocab", "embed")}}

    return layer("projection_discriminator", init, apply, pair_x_rank=3, axes=axes)
