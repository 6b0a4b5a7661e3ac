"""A convolutional VAE's networks: encoder, decoder and the two joined by a reparameterised sample.

* :func:`conv_encoder`: images ``(..., H, W, C)`` in ``[0, 1]`` -> ``(..., 2L)``, the posterior's mean and
  log-variance (:func:`deepcore.vae.split_gaussian`).
* :func:`conv_decoder`: ``z (..., L)`` -> ``(..., H, W, 2C)``, each pixel's logistic ``loc`` (``[0, 1]``
  scale) then ``log_scale`` (:func:`deepcore.vae.discretized_logistic_log_prob`).
* :func:`VAE`: ``encoder - GaussianSample - decoder`` as one layer (params ``{"encoder", "decoder"}``):
  a sampled reconstruction in train mode, the posterior mean's in eval mode. Train it with
  :func:`deepcore.vae.elbo_loss` (which calls the two networks itself, for the KL term).

Upsampling reuses the DCGAN's :func:`~deepcore.layers.PhaseConvTranspose` (fast on CPUs).
"""
from __future__ import annotations

from typing import Sequence

from deepcore import layers as L
from deepcore.core import Layer
from deepcore.vae import GaussianSample

__all__ = ["conv_encoder", "conv_decoder", "VAE"]


def conv_encoder(latent_dim: int = 32, *, channels: Sequence[int] = (32, 64), hidden: int = 256,
                 kernel_size: int = 4) -> Layer:
    """``(..., H, W, C) -> (..., 2 * latent_dim)``: [conv ``kernel_size`` stride 2 "SAME" - SiLU] per entry of
    ``channels``, flatten, dense ``hidden`` - SiLU, dense ``2 * latent_dim`` (mean | log-variance)."""
    stack = []
    for c in channels:
        stack += [L.Conv2D(c, kernel_size, strides=2, padding="SAME"), L.Silu]
    stack += [L.Flatten(-3), L.Dense(hidden), L.Silu, L.Dense(2 * latent_dim)]
    return L.serial(*stack)


def conv_decoder(*, channels: Sequence[int] = (64, 32), base: int = 7, out_channels: int = 1, hidden: int = 256,
                 kernel_size: int = 4) -> Layer:
    """``z (..., L) -> (..., H, W, 2 * out_channels)``, ``H = W = base * 2**len(channels)``: dense ``hidden`` -
    SiLU - dense ``base*base*channels[0]`` - SiLU - reshape ``(base, base, channels[0])``, then a stride-2
    transposed conv - SiLU per later entry of ``channels`` and a last one to ``2 * out_channels`` (loc |
    log_scale)."""
    c0 = channels[0]
    stack = [L.Dense(hidden), L.Silu, L.Dense(base * base * c0), L.Silu,
             L.Lambda(lambda x: x.reshape(x.shape[:-1] + (base, base, c0)), "reshape")]
    for c in channels[1:]:
        stack += [L.PhaseConvTranspose(c, kernel_size, strides=2), L.Silu]
    stack += [L.PhaseConvTranspose(2 * out_channels, kernel_size, strides=2)]
    return L.serial(*stack)


def VAE(encoder: Layer, decoder: Layer) -> Layer:
    """``x (..., H, W, C)`` in ``[0, 1]`` -> the decoder's ``(..., H, W, 2C)`` at a posterior sample (train mode,
    needs a key) or at the posterior mean (eval mode): ``serial({"encoder", "sample", "decoder"})``."""
    return L.serial({"encoder": encoder, "sample": GaussianSample(), "decoder": decoder})
