"""deepcore.vae against independent computations: numpy closed forms, Monte-Carlo estimates and a numerically
integrated marginal likelihood; the VAE networks' shapes; the catalog's VAE function cases gradient-checked."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import catalog, vae
from deepcore.core import ShapeError
from deepcore.gradcheck import MODES, check_case
from deepcore.models.vae import VAE, conv_decoder, conv_encoder


def _np_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np_level_probs(x, loc, s, levels=256):
    """P(level x) of a discretised logistic from its CDF in float64, no log-space tricks: a difference of
    CDFs left of loc, of survival functions right of it (where the CDFs would round to 1)."""
    c, h = x / (levels - 1), 0.5 / (levels - 1)
    a, b = (c + h - loc) / s, (c - h - loc) / s
    a, b = np.where(x >= levels - 1, np.inf, a), np.where(x <= 0, -np.inf, b)
    return np.where(b > 0, _np_sigmoid(-b) - _np_sigmoid(-a), _np_sigmoid(a) - _np_sigmoid(b))


def test_discretized_logistic_matches_numpy_cdf_differences():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, 200)
    x[:3] = (0, 255, 128)
    loc, log_scale = rng.uniform(-0.2, 1.2, 200), rng.uniform(-5, 0, 200)
    with jax.enable_x64(True):
        got = np.asarray(vae.discretized_logistic_log_prob(jnp.asarray(x), jnp.asarray(loc), jnp.asarray(log_scale)))
    np.testing.assert_allclose(got, np.log(_np_level_probs(x, loc, np.exp(log_scale))), rtol=1e-9, atol=1e-12)
    got32 = vae.discretized_logistic_log_prob(x, loc.astype(np.float32), log_scale.astype(np.float32))
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got32), got, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("loc,log_scale", [(0.5, -3.0), (-3.0, -1.0), (4.0, -2.0), (0.001, -8.0), (0.3, 2.0)])
def test_discretized_logistic_levels_sum_to_one(loc, log_scale):
    """A distribution over the 256 levels (so its bits/dim are honest), even far in either tail."""
    p = jnp.exp(vae.discretized_logistic_log_prob(jnp.arange(256), jnp.float32(loc), jnp.float32(log_scale)))
    assert abs(float(jnp.sum(p)) - 1.0) < 1e-5


def test_discretized_logistic_far_tail_is_accurate_in_float32():
    """Levels 20-80 scales above loc, where float32 CDF differences round to 0 (log -inf): the float32
    log-space form agrees with numpy's float64 survival functions."""
    x, loc, log_scale = np.array([128, 250, 240]), np.array([0.0, 0.01, 0.3]), np.array([-4.0, -4.5, -3.5])
    ref = np.log(_np_level_probs(x, loc, np.exp(log_scale)))
    a, b = ((x / 255 + d / 510 - loc) / np.exp(log_scale) for d in (1, -1))
    naive32 = _np_sigmoid(a.astype(np.float32)) - _np_sigmoid(b.astype(np.float32))
    assert np.all(naive32 == 0) and np.all(ref < -20)
    got = np.asarray(vae.discretized_logistic_log_prob(x, loc.astype(np.float32), log_scale.astype(np.float32)))
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_gaussian_kl_and_log_prob_match_numpy():
    rng = np.random.default_rng(1)
    mean, log_var, z = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    var = np.exp(log_var)
    with jax.enable_x64(True):
        kl = np.asarray(vae.gaussian_kl(jnp.asarray(mean), jnp.asarray(log_var)))
        lp = np.asarray(vae.gaussian_log_prob(jnp.asarray(z), jnp.asarray(mean), jnp.asarray(log_var)))
        prior = np.asarray(vae.gaussian_log_prob(jnp.asarray(z), 0.0, 0.0))
    np.testing.assert_allclose(kl, np.sum(0.5 * (var + mean ** 2 - 1 - log_var), -1), rtol=1e-12)
    np.testing.assert_allclose(lp, np.sum(-0.5 * ((z - mean) ** 2 / var + np.log(2 * np.pi * var)), -1), rtol=1e-12)
    np.testing.assert_allclose(prior, np.sum(-0.5 * (z ** 2 + np.log(2 * np.pi)), -1), rtol=1e-12)


def test_kl_is_the_monte_carlo_mean_of_log_q_minus_log_p_over_reparameterised_draws():
    mean, log_var = jnp.array([0.7, -1.2, 0.0]), jnp.array([-0.5, 0.4, -2.0])
    keys = jax.random.split(jax.random.PRNGKey(0), 200_000)
    z = jax.vmap(lambda k: vae.reparameterize(k, mean, log_var))(keys)
    est = vae.gaussian_log_prob(z, mean, log_var) - vae.gaussian_log_prob(z, 0.0, 0.0)
    se = float(jnp.std(est)) / math.sqrt(len(keys))
    assert abs(float(jnp.mean(est)) - float(vae.gaussian_kl(mean, log_var))) < 4 * se
    np.testing.assert_allclose(np.mean(np.asarray(z), 0), mean, atol=0.01)
    np.testing.assert_allclose(np.var(np.asarray(z), 0), np.exp(log_var), rtol=0.02)


def test_reparameterize_gradients_are_one_and_half_sigma_eps():
    key, mean, log_var = jax.random.PRNGKey(3), jnp.array([0.5, -1.0]), jnp.array([0.2, -0.6])
    eps = (vae.reparameterize(key, mean, log_var) - mean) / jnp.exp(0.5 * log_var)
    g_mean, g_lv = jax.grad(lambda m, lv: jnp.sum(vae.reparameterize(key, m, lv)), (0, 1))(mean, log_var)
    np.testing.assert_allclose(g_mean, 1.0)
    np.testing.assert_allclose(g_lv, 0.5 * np.exp(0.5 * np.asarray(log_var)) * np.asarray(eps), rtol=1e-6)


def _toy_model(q_mean, q_log_var):
    """One latent, one 2-pixel image: decoder loc = (0.5 + 0.2 z, 0.3 - 0.1 z), log_scale -2.5; a fixed q."""
    encode = lambda x01: jnp.broadcast_to(jnp.array([q_mean, q_log_var], x01.dtype), (x01.shape[0], 2))  # noqa
    decode = lambda z: jnp.stack([0.5 + 0.2 * z, 0.3 - 0.1 * z, jnp.full_like(z, -2.5), jnp.full_like(z, -2.5)],
                                 -1)[:, 0, :]  # noqa: E731
    return encode, decode


def test_elbo_and_importance_weighted_bound_approach_the_integrated_log_likelihood():
    """log p(x) by quadrature over z in numpy; for a poor posterior q, E[ELBO] = E[IW_1] < IW_8 < IW_512 and
    IW_512 is within 0.15 nats of log p(x) (Burda et al.'s ordering), never above it."""
    x = np.array([[150, 60]])
    zs = np.linspace(-12, 12, 48_001)
    lik = (_np_level_probs(x[0, 0], 0.5 + 0.2 * zs, np.exp(-2.5)) * _np_level_probs(x[0, 1], 0.3 - 0.1 * zs,
                                                                                     np.exp(-2.5)))
    log_px = np.log(np.trapezoid(lik * np.exp(-0.5 * zs ** 2) / np.sqrt(2 * np.pi), zs))    # -9.683
    encode, decode = _toy_model(1.0, -2.0)   # the true posterior has mean 0.36 and variance 0.26

    def bounds(keys):
        elbo = lambda k: -sum(vae.elbo_terms(encode, decode, xj, k)[n][0] for n in ("rec", "kl"))  # noqa: E731
        iw = lambda n: jax.vmap(lambda k: vae.importance_weighted_bound(encode, decode, xj, k, n)[0])  # noqa: E731
        return {"elbo": jax.vmap(elbo)(keys), "iw1": iw(1)(keys), "iw8": iw(8)(keys), "iw512": iw(512)(keys[:500])}

    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        r = {n: (float(jnp.mean(v)), float(jnp.std(v)) / math.sqrt(len(v)))
             for n, v in jax.jit(bounds)(jax.random.split(jax.random.PRNGKey(1), 4000)).items()}
    (elbo, se_e), (iw1, se_1), (iw8, _), (iw512, se_512) = (r[n] for n in ("elbo", "iw1", "iw8", "iw512"))
    assert abs(elbo - iw1) < 4 * math.hypot(se_e, se_1)
    assert elbo + 0.3 < iw8 and iw8 + 0.2 < iw512 < log_px + 4 * se_512
    assert log_px - iw512 < 0.15 and log_px - elbo > 0.5


def test_elbo_loss_is_bits_per_dim_of_the_elbo_terms_and_refuses_a_wrong_decoder():
    enc, dec = conv_encoder(4, channels=(3, 4), hidden=8), conv_decoder(channels=(4, 3), base=2, hidden=8)
    model = VAE(enc, dec)
    _, params, _ = model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32))
    x = jax.random.randint(jax.random.PRNGKey(1), (3, 8, 8, 1), 0, 256).astype(jnp.uint8)
    loss, (_, m) = vae.elbo_loss(enc, dec)(params, {}, {"image": x}, jax.random.PRNGKey(2), True)
    t = vae.elbo_terms(lambda v: enc.apply(params["encoder"], {}, v)[0],
                       lambda z: dec.apply(params["decoder"], {}, z)[0], x, jax.random.PRNGKey(2))
    np.testing.assert_allclose(m["rec_bpd"], np.mean(t["rec"]) / (64 * np.log(2)), rtol=1e-6)
    np.testing.assert_allclose(m["kl_bpd"], np.mean(t["kl"]) / (64 * np.log(2)), rtol=1e-6)
    np.testing.assert_allclose(loss, m["rec_bpd"] + m["kl_bpd"], rtol=1e-6)
    assert np.all(np.asarray(t["kl"]) > 0) and 0 < float(m["rec_bpd"]) < 16
    with pytest.raises(ShapeError, match=r"decoder: expected .* shape \(3, 8, 8, 2\), got \(3, 8, 8, 1\)"):
        vae.elbo_terms(lambda v: enc.apply(params["encoder"], {}, v)[0],
                       lambda z: dec.apply(params["decoder"], {}, z)[0][..., :1], x, jax.random.PRNGKey(2))


def test_vae_networks_shapes_and_gaussian_sample_modes():
    enc, dec = conv_encoder(16), conv_decoder()
    out, params, _ = VAE(enc, dec).init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
    assert out.shape == (2, 28, 28, 2) and set(params) == {"encoder", "decoder"}
    h = jnp.arange(8.0).reshape(2, 4)
    mean, _ = vae.GaussianSample().apply({}, {}, h)
    np.testing.assert_array_equal(mean, h[:, :2])
    with pytest.raises(ValueError, match="needs a PRNG key"):
        vae.GaussianSample().apply({}, {}, h, train=True)
    with pytest.raises(ShapeError, match=r"expected an even last dim .* got \(2, 3\)"):
        vae.GaussianSample().init(None, jax.ShapeDtypeStruct((2, 3), jnp.float32))


@pytest.mark.parametrize("name", ["discretized_logistic_log_prob", "gaussian_kl_and_sample", "vae_neg_elbo"])
def test_catalog_vae_functions_pass_the_gradient_checker(name):
    case = next(c for c in catalog.FUNCTION_CASES if c.name == name)
    r = check_case(case, seed=0, modes=MODES, k=2, full_max=32, samples=8, hvp_k=1)
    assert r.ok, r.table()
