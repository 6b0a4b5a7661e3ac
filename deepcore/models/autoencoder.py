"""A convolutional autoencoder ``(..., H, W, C) -> (..., H, W, C)`` in ``[0, 1]`` (sigmoid output).

``ConvAutoencoder((28, 28, 1), channels=(32, 64), latent=32)``: encoder [conv 3x3 stride 2 - ReLU] per entry of
``channels`` (28 -> 14 -> 7), flatten, dense ``latent``; decoder dense ``7*7*64`` - ReLU - reshape, [stride-2
transposed conv 4x4 - ReLU] back through ``channels``, a last stride-2 transposed conv to ``C`` and a sigmoid.
params ``{"encoder": ..., "decoder": ...}``; :func:`conv_encoder` / :func:`conv_decoder` build either half alone
(apply one with ``params["encoder"]`` or ``params["decoder"]``).
"""
from __future__ import annotations

from typing import Sequence, Tuple

from deepcore import layers as L
from deepcore.core import Layer
from deepcore.layers.phase_conv import PhaseConvTranspose


def _base(image_shape, channels) -> int:
    h, w, _ = image_shape
    f = 2 ** len(channels)
    if h != w or h % f:
        raise ValueError(f"conv_autoencoder: expected a square image divisible by {f} (2 ** len(channels)), "
                         f"got {h}x{w}")
    return h // f


def conv_encoder(image_shape: Tuple[int, int, int], channels: Sequence[int] = (32, 64), latent: int = 32) -> Layer:
    """``(..., H, W, C) -> (..., latent)``: [conv 3x3 stride 2 - ReLU] per channel count, flatten, dense."""
    _base(image_shape, channels)
    stack = [l for c in channels for l in (L.Conv2D(c, 3, strides=2), L.Relu)]
    return L.serial(*stack, L.Flatten(-3), L.Dense(latent))


def conv_decoder(image_shape: Tuple[int, int, int], channels: Sequence[int] = (32, 64)) -> Layer:
    """``(..., latent) -> (..., H, W, C)`` in ``[0, 1]``: the mirror of :func:`conv_encoder`."""
    b, c_last = _base(image_shape, channels), channels[-1]
    stack = [L.Dense(b * b * c_last), L.Relu, L.Reshape((b, b, c_last), -1)]
    for c in reversed(channels[:-1]):
        stack += [PhaseConvTranspose(c, 4, strides=2), L.Relu]
    return L.serial(*stack, PhaseConvTranspose(image_shape[2], 4, strides=2), L.Sigmoid)


def ConvAutoencoder(image_shape: Tuple[int, int, int] = (28, 28, 1), channels: Sequence[int] = (32, 64),
                    latent: int = 32) -> Layer:
    """Encoder then decoder (params ``{"encoder", "decoder"}``); see the module docstring."""
    return L.serial({"encoder": conv_encoder(image_shape, channels, latent),
                     "decoder": conv_decoder(image_shape, channels)})


__all__ = ["ConvAutoencoder", "conv_encoder", "conv_decoder"]
