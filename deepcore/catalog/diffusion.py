"""Cases for the diffusion parts: time embeddings, U-Net blocks (:mod:`deepcore.layers.unet`) and the U-Net.

The residual block and the U-Net take pairs (``(x, emb)``, ``(x, t)``); a case feeds one array, so each runs
inside a small harness that makes the second input from the first: ``emb = tanh(mean of x over positions)``
(gradients reach the block through both inputs), and a fixed timestep for the U-Net.
"""
import jax
import jax.numpy as jnp

from deepcore.catalog.case import Case
from deepcore.core import layer, output_spec
from deepcore.layers.time_embedding import TimeEmbedding
from deepcore.layers.unet import Downsample, ResBlock, Upsample
from deepcore.models.unet import unet


def _fed_pairs(name: str, net, pair):
    """``x -> net(pair(x))``: a one-input layer around the pair-input ``net``."""
    def init(key, spec):
        _, params, state = net.init(key, jax.eval_shape(pair, spec))
        return output_spec(apply, params, state, spec), params, state

    def apply(params, state, x, *, key=None, train=False):
        return net.apply(params, state, pair(x), key=key, train=train)

    return layer(name, init, apply, axes=net.axes)


def _with_embedding(block):
    """``x (..., H, W, C) -> block((x, tanh(mean_HW(x))))``."""
    return _fed_pairs("with_embedding", block, lambda x: (x, jnp.tanh(x.mean(axis=(-3, -2)))))


def _at_timestep(net, t: int):
    """``x (..., H, W, C) -> net((x, t))`` at a fixed integer timestep ``t``."""
    return _fed_pairs("at_timestep", net, lambda x: (x, jnp.full(x.shape[:-3], t, jnp.int32)))

LAYER_CASES = [
    Case("time_embedding", lambda: TimeEmbedding(6, dim=4), (3,), int_max=1000),
    Case("unet_res_block", lambda: _with_embedding(ResBlock(6, groups=2, zero_init=False)), (2, 5, 5, 4)),
    Case("unet_res_block_same_width", lambda: _with_embedding(ResBlock(4, groups=2, zero_init=False)), (2, 4, 4, 4)),
    Case("unet_downsample", lambda: Downsample(3), (2, 5, 5, 2)),
    Case("unet_upsample", lambda: Upsample(3), (2, 3, 3, 2)),
]

MODEL_CASES = [
    Case("unet_tiny", lambda: _at_timestep(unet((4, 8), attention_at=(1,), groups=2, heads=2,
                                                        zero_init=False), 37), (2, 6, 6, 1)),
]
