"""Denoising diffusion (DDPM, Ho et al. 2020) with epsilon prediction, and the DDPM and DDIM samplers.

    sched = schedule("cosine", 1000)                       # Schedule(betas, alphas_bar), float32 (T,)
    x_t = q_sample(sched, x0, t, noise)                    # sqrt(a_t) x0 + sqrt(1 - a_t) noise
    loss = eps_loss(lambda x, t: net(x, t), sched, x0, key)        # mean |eps - eps_hat(x_t, t)|^2
    loss_fn = denoising_loss(unet(), sched, x="image")     # the same, as a train_step loss function
    x0 = ddim_sample(eps_fn, sched, noise, steps=50)       # deterministic (eta = 0) DDIM, Song et al. 2021
    x0 = ddpm_sample(eps_fn, sched, noise, key)            # ancestral sampling over all T steps

``eps_fn(x, t) -> eps`` takes ``x (B, ...)`` and integer timesteps ``t (B,)`` in ``[0, T)``; ``a_t`` is the
cumulative product ``alphas_bar[t]`` (``t = 0`` is the first noising step, not clean data).
Schedules: ``"linear"`` betas from 1e-4 to 0.02 (DDPM) scaled by ``1000 / T``; ``"cosine"`` (Nichol & Dhariwal
2021): ``a(t) = f(t) / f(0)``, ``f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2``, ``s = 0.008``, betas clipped
at 0.999.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Schedule(NamedTuple):
    betas: jnp.ndarray        # (T,)
    alphas_bar: jnp.ndarray   # (T,) cumulative products of 1 - betas

    @property
    def steps(self) -> int:
        return self.betas.shape[0]


def schedule(kind: str = "cosine", steps: int = 1000) -> Schedule:
    """The noise schedule ``kind`` ("linear" or "cosine") over ``steps`` timesteps, computed in float64."""
    if kind == "linear":
        scale = 1000 / steps
        betas = np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
    elif kind == "cosine":
        s = 0.008
        f = np.cos((np.arange(steps + 1, dtype=np.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    else:
        raise ValueError(f"schedule: expected kind 'linear' or 'cosine', got {kind!r}")
    return Schedule(jnp.asarray(betas, jnp.float32), jnp.asarray(np.cumprod(1 - betas), jnp.float32))


def _per_example(v, x):
    """``v (B,)`` shaped to broadcast against ``x (B, ...)``."""
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim)).astype(x.dtype)


def q_sample(sched: Schedule, x0, t, noise):
    """``x_t ~ q(x_t | x_0)``: ``sqrt(a_t) x0 + sqrt(1 - a_t) noise`` for ``x0, noise (B, ...)``, ``t (B,)``."""
    a = _per_example(sched.alphas_bar[t], x0)
    return jnp.sqrt(a) * x0 + jnp.sqrt(1 - a) * noise


def eps_loss(eps_fn: Callable, sched: Schedule, x0, key):
    """DDPM's simple loss: the mean squared error of the predicted noise at uniform random timesteps."""
    kt, kn = jax.random.split(key)
    t = jax.random.randint(kt, x0.shape[:1], 0, sched.steps)
    noise = jax.random.normal(kn, x0.shape, x0.dtype)
    return jnp.mean((eps_fn(q_sample(sched, x0, t, noise), t) - noise) ** 2)


def denoising_loss(model, sched: Schedule, *, x: str = "x") -> Callable:
    """:func:`eps_loss` under the training engine's contract ``(params, model_state, batch, key, train) ->
    (loss, (model_state, metrics))`` for a ``model`` applied to ``(x_t, t)`` pairs (e.g. :func:`deepcore.models.
    unet.unet`). ``batch[x]`` holds floats in ``[-1, 1]`` or uint8 images (mapped to ``[-1, 1]``)."""
    apply = getattr(model, "apply", model)

    def loss_fn(params, model_state, batch, key, train):
        x0 = batch[x]
        x0 = x0.astype(jnp.float32) / 127.5 - 1 if x0.dtype == jnp.uint8 else x0
        k_model, k_loss = jax.random.split(key)
        out = {}

        def eps_fn(xt, t):
            eps, out["state"] = apply(params, model_state, (xt, t), key=k_model, train=train)
            return eps

        loss = eps_loss(eps_fn, sched, x0, k_loss)
        return loss, (out["state"], {"loss": loss})

    return loss_fn


def ddim_timesteps(total: int, steps: int) -> np.ndarray:
    """``steps`` evenly spaced timesteps of ``[0, total)``, descending, ending at 0."""
    if not 1 <= steps <= total:
        raise ValueError(f"ddim_timesteps: expected 1 <= steps <= {total}, got {steps}")
    return np.unique(np.linspace(0, total - 1, steps).round().astype(np.int32))[::-1].copy()


def ddim_sample(eps_fn: Callable, sched: Schedule, x_T, steps: int = 50, clip: float = None):
    """Deterministic DDIM (eta = 0) from noise ``x_T (B, ...)`` over ``steps`` timesteps: at each,
    ``x0_hat = (x - sqrt(1 - a_t) eps) / sqrt(a_t)`` (clipped to ``[-clip, clip]`` if given) and
    ``x = sqrt(a_prev) x0_hat + sqrt(1 - a_prev) eps``, with ``a_prev = 1`` after the last step."""
    ts = jnp.asarray(ddim_timesteps(sched.steps, steps))
    a_all = jnp.concatenate([sched.alphas_bar, jnp.ones((1,), sched.alphas_bar.dtype)])
    prev = jnp.concatenate([ts[1:], jnp.array([-1], ts.dtype)])   # -1 reads a_prev = 1

    def body(x, tp):
        t, tprev = tp
        a, a_prev = a_all[t].astype(x.dtype), a_all[tprev].astype(x.dtype)
        eps = eps_fn(x, jnp.full(x.shape[:1], t, jnp.int32))
        x0 = (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        return jnp.sqrt(a_prev) * x0 + jnp.sqrt(1 - a_prev) * eps, None

    return jax.lax.scan(body, x_T, (ts, prev))[0]


def ddpm_sample(eps_fn: Callable, sched: Schedule, x_T, key, clip: float = None):
    """Ancestral DDPM sampling over all ``T`` steps: ``x_{t-1} = mean(x_t, x0_hat) + sigma_t z`` with the
    posterior's mean and variance ``beta_t (1 - a_{t-1}) / (1 - a_t)`` (no noise at the last step)."""
    a_prev_all = jnp.concatenate([jnp.ones((1,), sched.alphas_bar.dtype), sched.alphas_bar[:-1]])

    def body(x, t):
        a, a_prev, beta = (v[t].astype(x.dtype) for v in (sched.alphas_bar, a_prev_all, sched.betas))
        eps = eps_fn(x, jnp.full(x.shape[:1], t, jnp.int32))
        x0 = (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        mean = (jnp.sqrt(a_prev) * beta * x0 + jnp.sqrt(1 - beta) * (1 - a_prev) * x) / (1 - a)
        z = jax.random.normal(jax.random.fold_in(key, t), x.shape, x.dtype)
        sigma = jnp.sqrt(beta * (1 - a_prev) / (1 - a))
        return mean + jnp.where(t > 0, sigma, 0).astype(x.dtype) * z, None

    return jax.lax.scan(body, x_T, jnp.arange(sched.steps - 1, -1, -1))[0]


__all__ = ["Schedule", "schedule", "q_sample", "eps_loss", "denoising_loss", "ddim_timesteps", "ddim_sample",
           "ddpm_sample"]
