"""Variational autoencoders: reparameterised Gaussian sampling, the KL to N(0, I), a discretised likelihood
over 8-bit pixels, the ELBO and the importance-weighted bound, and the training loss.

::

    mean, log_var = split_gaussian(encoder_out)                  # (..., 2L) -> two (..., L)
    z = reparameterize(key, mean, log_var)                        # mean + exp(log_var / 2) * eps
    kl = gaussian_kl(mean, log_var)                               # (...,) nats, KL(q || N(0, I))
    ll = discretized_logistic_log_prob(x_uint8, loc, log_scale)   # per pixel, nats, 256 levels
    loss = elbo_loss(encoder, decoder, x="image")                 # the training engine's loss contract

Pixel levels ``x`` in ``{0, ..., 255}`` sit at ``x / 255`` in ``[0, 1]``; each level owns the bin
``[x/255 - 1/510, x/255 + 1/510]`` of a logistic ``(loc, exp(log_scale))``, the two end levels its tails
(PixelCNN++'s likelihood, one logistic per pixel). The probabilities of the 256 levels sum to one, so
``-ELBO / (D ln 2)`` is an honest bound in bits per dimension on the 8-bit data.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from deepcore.core import Layer, ShapeError, accum_dtype, layer, require_key

LOG_2PI = math.log(2 * math.pi)


def split_gaussian(h):
    """``(..., 2L) -> (mean (..., L), log_var (..., L))``: the first and second half of the last axis."""
    if h.shape[-1] % 2:
        raise ShapeError(f"split_gaussian: expected an even last dim (mean and log-variance), got {tuple(h.shape)}")
    return jnp.split(h, 2, axis=-1)


def reparameterize(key, mean, log_var):
    """A draw ``z = mean + exp(log_var / 2) * eps``, ``eps ~ N(0, I)`` of ``mean``'s shape and dtype (drawn in
    float32 for narrower dtypes: the same draw in bfloat16); differentiable in ``mean`` and ``log_var``."""
    dt = jnp.result_type(mean)
    eps = jax.random.normal(key, jnp.shape(mean), accum_dtype(dt)).astype(dt)
    return mean + jnp.exp(0.5 * log_var) * eps


def gaussian_kl(mean, log_var):
    """``KL(N(mean, diag(exp(log_var))) || N(0, I))`` in nats, summed over the last axis: ``(..., L) -> (...)``."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def gaussian_log_prob(z, mean, log_var):
    """``log N(z; mean, diag(exp(log_var)))`` in nats, summed over the last axis: ``(..., L) -> (...)``.
    The standard normal prior is ``gaussian_log_prob(z, 0, 0)``."""
    z = jnp.asarray(z)
    mean, log_var = (jnp.broadcast_to(jnp.asarray(v).astype(z.dtype), z.shape) for v in (mean, log_var))
    return -0.5 * jnp.sum(LOG_2PI + log_var + jnp.square(z - mean) * jnp.exp(-log_var), axis=-1)


def discretized_logistic_log_prob(x, loc, log_scale, *, levels: int = 256):
    """Log-probability (nats) of integer pixel levels ``x`` in ``[0, levels)`` under a logistic ``(loc,
    exp(log_scale))`` on the ``[0, 1]`` scale, discretised into ``levels`` bins: elementwise, ``x``'s shape.

    Level ``x`` owns ``[c - h, c + h]``, ``c = x / (levels - 1)``, ``h = 1 / (2 (levels - 1))``; level 0 also
    owns everything below, the top level everything above. With ``a = (c + h - loc) / s``, ``b = (c - h - loc)
    / s``: ``P = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))``, computed in logs, so it
    stays accurate far in either tail."""
    loc = jnp.asarray(loc)
    dt = accum_dtype(loc.dtype)
    loc, log_scale = loc.astype(dt), jnp.asarray(log_scale).astype(dt)
    step = 1.0 / (levels - 1)
    c = jnp.asarray(x).astype(dt) * step
    inv_s = jnp.exp(-log_scale)
    a, b = (c + 0.5 * step - loc) * inv_s, (c - 0.5 * step - loc) * inv_s
    log_cdf_a, log_sf_b = jax.nn.log_sigmoid(a), jax.nn.log_sigmoid(-b)
    middle = log_cdf_a + log_sf_b + jnp.log(-jnp.expm1(-step * inv_s))
    xi = jnp.asarray(x)
    return jnp.where(xi <= 0, log_cdf_a, jnp.where(xi >= levels - 1, log_sf_b, middle))


def bits_per_dim(nats, dims: int):
    """Nats per example -> bits per dimension: ``nats / (dims ln 2)``."""
    return nats / (dims * math.log(2.0))


def elbo_terms(encode: Callable, decode: Callable, x, key, *, levels: int = 256) -> dict:
    """One-sample ELBO parts of a batch of integer images ``x (B, ...)``: ``{"rec": -log p(x|z) (B,), "kl":
    KL(q(z|x) || N(0, I)) (B,)}`` in nats; ``-ELBO = rec + kl``.

    ``encode(x01) -> (B, 2L)`` (mean | log-variance) takes the images scaled to ``[0, 1]``;
    ``decode(z (B, L)) -> (B, ..., 2C)`` the per-pixel logistic ``loc`` then ``log_scale`` on the last axis
    (``C`` the images' channels)."""
    mean, log_var = split_gaussian(encode(_unit(x, levels)))
    out = decode(reparameterize(key, mean, log_var))
    kl = gaussian_kl(mean, log_var)
    return {"rec": -_image_log_prob(x, out, levels), "kl": kl.astype(accum_dtype(kl.dtype))}


def importance_weighted_bound(encode: Callable, decode: Callable, x, key, k: int, *, levels: int = 256):
    """The ``k``-sample importance-weighted lower bound on ``log p(x)`` (Burda et al., 2016), nats, ``(B,)``:
    ``logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k``, ``z_i ~ q(z|x)``. ``k = 1`` is the
    one-sample ELBO; the bound rises towards ``log p(x)`` as ``k`` grows. ``encode``/``decode`` as
    :func:`elbo_terms`; the ``k`` decodes run one after another (memory of one batch)."""
    mean, log_var = split_gaussian(encode(_unit(x, levels)))

    def one(key):
        z = reparameterize(key, mean, log_var)
        log_w = _image_log_prob(x, decode(z), levels) + gaussian_log_prob(z, 0.0, 0.0) \
            - gaussian_log_prob(z, mean, log_var)
        return log_w.astype(accum_dtype(log_w.dtype))

    log_w = jax.lax.map(one, jax.random.split(key, k))          # (k, B)
    return jax.nn.logsumexp(log_w, axis=0) - math.log(k)


def _unit(x, levels):
    """Integer levels as floats in ``[0, 1]``, in the default float dtype (float64 under ``jax.enable_x64``)."""
    return jnp.asarray(x).astype(jax.dtypes.canonicalize_dtype(jnp.float64)) / (levels - 1)


def _image_log_prob(x, out, levels):
    """Per-example ``log p(x|z)`` of images ``x (B, ..., C)`` under decoder outputs ``out (B, ..., 2C)`` (``loc``
    then ``log_scale`` on the last axis): the pixel log-probabilities summed over every axis but the first."""
    want = tuple(jnp.shape(x)[:-1]) + (2 * jnp.shape(x)[-1],)
    if tuple(out.shape) != want:
        raise ShapeError(f"decoder: expected (loc | log_scale) per pixel of images {tuple(jnp.shape(x))}, "
                         f"shape {want}, got {tuple(out.shape)}")
    loc, log_scale = split_gaussian(out)
    ll = discretized_logistic_log_prob(x, loc, log_scale, levels=levels)
    return jnp.sum(ll.reshape(ll.shape[0], -1), axis=-1)


def elbo_loss(encoder: Layer, decoder: Layer, *, x: str = "image", levels: int = 256) -> Callable:
    """The training engine's loss ``loss_fn(params, model_state, batch, key, train) -> (loss, (state, metrics))``
    of a VAE with ``params = {"encoder": ..., "decoder": ...}`` (as :func:`deepcore.models.vae.VAE` builds):
    the batch mean of ``-ELBO`` in bits per dimension of the integer images ``batch[x]``; metrics ``loss``,
    ``rec_bpd`` and ``kl_bpd`` (its two parts). One posterior sample per image, from ``key``."""

    def loss_fn(params, model_state, batch, key, train):
        s = dict(model_state)

        def run(name, lay, inp):
            y, st = lay.apply(params[name], model_state.get(name, {}), inp, train=train)
            if st:
                s[name] = st
            return y

        images = batch[x]
        t = elbo_terms(lambda v: run("encoder", encoder, v), lambda z: run("decoder", decoder, z), images, key,
                       levels=levels)
        dims = math.prod(images.shape[1:])
        rec, kl = jnp.mean(bits_per_dim(t["rec"], dims)), jnp.mean(bits_per_dim(t["kl"], dims))
        return rec + kl, (s, {"loss": rec + kl, "rec_bpd": rec, "kl_bpd": kl})

    return loss_fn


def GaussianSample() -> Layer:
    """``(..., 2L) -> (..., L)``: a reparameterised draw from the Gaussian whose mean and log-variance are the
    two halves of the last axis in train mode (needs a key), its mean in eval mode. No parameters."""

    def init(key, spec):
        if not spec.shape or spec.shape[-1] % 2:
            raise ShapeError(f"expected an even last dim (..., 2L) (mean | log-variance), got {tuple(spec.shape)}")
        return jax.ShapeDtypeStruct(tuple(spec.shape[:-1]) + (spec.shape[-1] // 2,), spec.dtype), {}, {}

    def apply(params, state, h, *, key=None, train=False):
        mean, log_var = split_gaussian(h)
        if not train:
            return mean, state
        require_key(key, "gaussian_sample")
        return reparameterize(key, mean, log_var), state

    return layer("gaussian_sample", init, apply)


__all__ = ["split_gaussian", "reparameterize", "gaussian_kl", "gaussian_log_prob", "discretized_logistic_log_prob",
           "bits_per_dim", "elbo_terms", "importance_weighted_bound", "elbo_loss", "GaussianSample"]
