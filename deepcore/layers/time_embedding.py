"""Diffusion timestep embeddings: the sinusoidal features of a (noise) timestep, and the MLP over them.

    emb = timestep_embedding(t, 64)              # t (B,) ints or floats -> (B, 64)
    temb = TimeEmbedding(128)                    # layer: sinusoidal(dim) -> Dense(128) -> SiLU -> Dense(128)
    emb = time_embedding(params, t, dim=64)      # the same on its parameters {"fc_in", "fc_out"}

The sinusoidal features are the Transformer's position table (:func:`deepcore.layers.position.sinusoidal`:
``sin(t / base^(2i/dim))`` at even, ``cos`` at odd features) read at the timesteps, as in DDPM (Ho et al.,
2020), where a U-Net's residual blocks receive the MLP's output.
"""
import jax
import jax.numpy as jnp

from deepcore.core import Layer, ShapeError, layer, output_spec, param_dtype_for
from deepcore.layers.dense import AXES as DENSE_AXES, Dense, dense
from deepcore.layers.position import sinusoidal


def timestep_embedding(t, dim: int, *, base: float = 10000.0, dtype=jnp.float32):
    """``t: (...)`` timesteps -> ``(..., dim)`` sinusoidal features (``dim`` even; angles in float32)."""
    if dim % 2:
        raise ShapeError(f"timestep_embedding: expected an even dim, got {dim}")
    return sinusoidal(t, dim, base, dtype)


def time_embedding(params, t, *, dim: int, base: float = 10000.0, dtype=jnp.float32):
    """``t: (...)`` -> ``(..., F)``: ``dense(fc_out, silu(dense(fc_in, timestep_embedding(t, dim))))``, params
    ``{"fc_in": {"w": (dim, F), "b"}, "fc_out": {"w": (F, F), "b"}}``, computed in ``dtype``."""
    h = jax.nn.silu(dense(params["fc_in"], timestep_embedding(t, dim, base=base, dtype=dtype), dtype=dtype))
    return dense(params["fc_out"], h, dtype=dtype)


def init_time_embedding(key, features: int, dim: int, dtype=jnp.float32) -> dict:
    """Parameters of :func:`time_embedding` (Glorot-uniform kernels, zero biases)."""
    k1, k2 = jax.random.split(key)
    return {"fc_in": Dense(features).init(k1, jax.ShapeDtypeStruct((1, dim), dtype))[1],
            "fc_out": Dense(features).init(k2, jax.ShapeDtypeStruct((1, features), dtype))[1]}


def TimeEmbedding(features: int, *, dim: int = None, base: float = 10000.0, param_dtype=None) -> Layer:
    """The layer of :func:`time_embedding`: timesteps ``t: (...)`` (ints or floats) -> ``(..., features)``;
    ``dim`` (even, default ``features``) sinusoidal features; float32 unless ``t`` or ``param_dtype`` is float64."""
    dim = features if dim is None else dim
    if dim % 2:
        raise ValueError(f"TimeEmbedding: expected an even dim, got {dim}")

    def init(key, spec):
        params = init_time_embedding(key, features, dim, param_dtype_for(spec.dtype, param_dtype))
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, t, *, key=None, train=False):
        return time_embedding(params, t, dim=dim, base=base, dtype=params["fc_in"]["w"].dtype), state

    return layer("time_embedding", init, apply, axes=AXES)


AXES = {"fc_in": DENSE_AXES, "fc_out": DENSE_AXES}   # logical axis names (deepcore.layers.logical)


__all__ = ["timestep_embedding", "time_embedding", "init_time_embedding", "TimeEmbedding"]
