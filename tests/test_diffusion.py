"""Diffusion maths (deepcore.diffusion) against closed forms computed in numpy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.diffusion import (ddim_sample, ddim_timesteps, ddpm_sample, denoising_loss, eps_loss, q_sample,
                                schedule)


def test_schedules_alpha_bar_match_numpy():
    lin = schedule("linear", 1000)
    want = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    np.testing.assert_allclose(np.asarray(lin.alphas_bar), want, rtol=1e-5)
    cos = schedule("cosine", 200)
    f = lambda t: math.cos((t / 200 + 0.008) / 1.008 * math.pi / 2) ** 2
    want = np.array([f(t + 1) / f(0) for t in range(200)])
    unclipped = np.asarray(cos.betas) < 0.999   # where no beta was clipped, alpha-bar is f(t + 1) / f(0)
    assert unclipped[:-1].all()
    np.testing.assert_allclose(np.asarray(cos.alphas_bar)[unclipped], want[unclipped], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(np.asarray(schedule("linear", 100).betas)[[0, -1]], [1e-3, 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="expected kind 'linear' or 'cosine', got 'quad'"):
        schedule("quad")


def test_q_sample_marginal_is_the_closed_form():
    sched = schedule("linear", 1000)
    n, t = 40000, 300
    x0 = jnp.full((n, 2), jnp.array([0.7, -1.2]))
    xt = np.asarray(q_sample(sched, x0, jnp.full((n,), t), jax.random.normal(jax.random.PRNGKey(0), (n, 2))))
    a = float(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[t])
    se = math.sqrt((1 - a) / n)
    np.testing.assert_allclose(xt.mean(0), math.sqrt(a) * np.array([0.7, -1.2]), atol=5 * se)
    np.testing.assert_allclose(xt.var(0), 1 - a, rtol=5 * math.sqrt(2 / n))


def gaussian_eps(sched, mu, s):
    """The exact E[eps | x_t] when the data are N(mu, s^2): sqrt(1 - a) (x - sqrt(a) mu) / (a s^2 + 1 - a)."""
    def eps_fn(x, t):
        a = sched.alphas_bar[t][:, None].astype(x.dtype)
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s ** 2 + 1 - a)
    return eps_fn


def test_ddim_with_the_true_epsilon_recovers_a_gaussian():
    with jax.enable_x64(True):
        sched = schedule("linear", 1000)
        mu, s, n = 0.3, 0.5, 20000
        x_T = jax.random.normal(jax.random.PRNGKey(1), (n, 1), jnp.float64)
        x0 = np.asarray(ddim_sample(gaussian_eps(sched, mu, s), sched, x_T, steps=1000))
        # the same deterministic chain in numpy: each step is affine in x for Gaussian data
        a_all = np.append(np.asarray(sched.alphas_bar, np.float64), 1.0)   # (float32 values, tested above)
        ts = [int(t) for t in ddim_timesteps(1000, 50)]   # (its spacing is tested below)
        x = np.asarray(x_T)
        for t, tp in zip(ts, ts[1:] + [-1]):
            a, ap = a_all[t], a_all[tp]
            eps = math.sqrt(1 - a) * (x - math.sqrt(a) * mu) / (a * s * s + 1 - a)
            x = math.sqrt(ap) * (x - math.sqrt(1 - a) * eps) / math.sqrt(a) + math.sqrt(1 - ap) * eps
        x50 = np.asarray(ddim_sample(gaussian_eps(sched, mu, s), sched, x_T, steps=len(ts)))
    assert len(ts) == 50
    np.testing.assert_allclose(x50, x, rtol=1e-9, atol=1e-9)
    se = s / math.sqrt(n)
    assert abs(x0.mean() - mu) < 5 * se and abs(x0.std() - s) < 5 * s * math.sqrt(1 / (2 * n)) + 2e-3


def test_ddpm_with_the_true_epsilon_recovers_a_gaussian():
    sched = schedule("cosine", 1000)
    mu, s, n = -0.4, 0.6, 20000
    x_T = jax.random.normal(jax.random.PRNGKey(2), (n, 1))
    x0 = np.asarray(ddpm_sample(gaussian_eps(sched, mu, s), sched, x_T, jax.random.PRNGKey(3)), np.float64)
    assert abs(x0.mean() - mu) < 5 * s / math.sqrt(n) and abs(x0.std() - s) < 0.02


def test_ddim_timesteps_descend_to_zero():
    assert list(ddim_timesteps(1000, 5)) == [999, 749, 500, 250, 0]   # numpy rounds half to even: 249.75, 499.5
    assert list(ddim_timesteps(4, 4)) == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="expected 1 <= steps <= 10, got 11"):
        ddim_timesteps(10, 11)


def test_the_loss_is_zero_for_the_true_noise_and_maps_uint8_images():
    sched = schedule("cosine", 100)
    x0 = jnp.full((4, 3, 3, 1), 0.25)
    true_noise = lambda x, t: (x - jnp.sqrt(sched.alphas_bar[t])[:, None, None, None] * x0) / \
        jnp.sqrt(1 - sched.alphas_bar[t])[:, None, None, None]
    assert float(eps_loss(true_noise, sched, x0, jax.random.PRNGKey(0))) < 1e-8
    assert abs(float(eps_loss(lambda x, t: 0 * x, sched, x0, jax.random.PRNGKey(0))) - 1) < 0.5

    def apply(params, state, xt_t, *, key=None, train=False):
        return true_noise(*xt_t), state

    loss_fn = denoising_loss(apply, sched, x="image")
    uint8 = jnp.full((4, 3, 3, 1), 159, jnp.uint8)    # 159 / 127.5 - 1 = 0.247..., not x0: a small error
    loss, (state, metrics) = loss_fn({}, {"s": 1}, {"image": uint8}, jax.random.PRNGKey(0), True)
    assert state == {"s": 1} and float(metrics["loss"]) == float(loss) and 0 < float(loss) < 1e-2
    exact = jnp.full((4, 3, 3, 1), 0.25)
    assert float(loss_fn({}, {}, {"image": exact}, jax.random.PRNGKey(0), True)[0]) < 1e-8
