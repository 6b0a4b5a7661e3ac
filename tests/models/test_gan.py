"""GAN models, losses, penalties, the two-network step and the Fréchet distance."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from deepcore import layers as L
from deepcore.frechet import feature_stats, frechet_distance, sqrtm_psd
from deepcore.gan import d_loss, g_loss, gradient_penalty, init_gan_state, make_gan_update, r1_penalty
from deepcore.models.gan import PhaseConvTranspose, SpectralNorm, dcgan_discriminator, dcgan_generator, \
    spectral_normalize

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("models_test_gan")

Z = 4


def small_pair(num_classes=None, spectral_norm=False):
    g = dcgan_generator(Z, channels=(6, 3), base=2, num_classes=num_classes, embed_dim=3)
    d = dcgan_discriminator((3, 4), spectral_norm=spectral_norm, num_classes=num_classes)
    return g, d


# ----------------------------------------------------------------------------- models

@pytest.mark.parametrize("k,s", [(4, 2), (3, 2), (5, 2), (6, 3)])
def test_phase_conv_transpose_equals_conv_transpose(k, s):
    phase = PhaseConvTranspose(5, k, strides=s)
    ref = L.ConvTranspose2D(5, k, strides=s, padding="SAME")
    _, params, _ = phase.init(jax.random.PRNGKey(0), (2, 6, 7, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 7, 3))
    y = phase.apply(params, {}, x)[0]
    assert y.shape == (2, 6 * s, 7 * s, 5)
    np.testing.assert_allclose(y, ref.apply(params, {}, x)[0], atol=1e-5)
    np.testing.assert_allclose(phase.apply(params, {}, x[0])[0], y[0], atol=1e-5)


def test_shapes_and_conditional_models():
    g, d = dcgan_generator(8), dcgan_discriminator()
    out, gp, gs = g.init(jax.random.PRNGKey(0), (3, 8))
    assert out.shape == (3, 28, 28, 1) and set(gs) == {"batch_norm_0", "batch_norm_1"}
    assert gs["batch_norm_0"]["mean"].shape == (128,)  # BN over channels after the reshape
    x = g.apply(gp, gs, jax.random.normal(jax.random.PRNGKey(1), (3, 8)), train=True)[0]
    assert float(jnp.abs(x).max()) <= 1.0
    out, dp, ds = d.init(jax.random.PRNGKey(0), (3, 28, 28, 1))
    assert out.shape == (3,) and d.apply(dp, ds, x)[0].shape == (3,)
    gc, dc = small_pair(num_classes=5)
    y = jnp.array([0, 4, 2])
    _, gp, gs = gc.init(jax.random.PRNGKey(0), (jax.ShapeDtypeStruct((3, Z), jnp.float32),
                                                 jax.ShapeDtypeStruct((3,), jnp.int32)))
    img = gc.apply(gp, gs, (jnp.ones((3, Z)), y), train=True)[0]
    assert img.shape == (3, 8, 8, 1)
    _, dp, ds = dc.init(jax.random.PRNGKey(0), (jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32),
                                                 jax.ShapeDtypeStruct((3,), jnp.int32)))
    a, b = dc.apply(dp, ds, (img, y))[0], dc.apply(dp, ds, (img, (y + 1) % 5))[0]
    assert a.shape == (3,) and not np.allclose(a, b)  # the label changes the logit (projection)
    with pytest.raises(ValueError, match="projection_discriminator: expected integer labels of shape \\(3,\\)"):
        dc.apply(dp, ds, (img, y[:2]))


def test_spectral_norm_top_singular_value_is_one():
    sn = SpectralNorm(L.Conv2D(6, 3))
    _, params, state = sn.init(jax.random.PRNGKey(0), (2, 5, 5, 4))
    params = {"w": params["w"] * 7.0, "b": params["b"]}
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 4))
    apply = jax.jit(lambda p, s: sn.apply(p, s, x, train=True))
    for _ in range(30):
        _, state = apply(params, state)
    w_sn, _, sigma = spectral_normalize(params["w"], state["u"], n_iter=0)
    top = np.linalg.svd(np.asarray(w_sn).reshape(-1, 6), compute_uv=False)[0]
    np.testing.assert_allclose(top, 1.0, rtol=1e-3)
    np.testing.assert_allclose(sigma, np.linalg.svd(np.asarray(params["w"]).reshape(-1, 6), compute_uv=False)[0],
                               rtol=1e-3)
    y_eval, s_eval = sn.apply(params, state, x)  # eval: stored u, state unchanged
    assert s_eval is state
    np.testing.assert_allclose(y_eval, L.Conv2D(6, 3).apply({"w": w_sn, "b": params["b"]}, {}, x)[0], atol=1e-5)


# ----------------------------------------------------------------------------- losses and penalties

def test_losses_against_hand_formulas():
    r, f = np.array([1.5, -0.3, 0.2]), np.array([-2.0, 0.7, 0.1])
    sp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    np.testing.assert_allclose(d_loss("nonsaturating", r, f), np.mean(sp(-r)) + np.mean(sp(f)), rtol=1e-6)
    np.testing.assert_allclose(g_loss("nonsaturating", f), np.mean(sp(-f)), rtol=1e-6)
    np.testing.assert_allclose(d_loss("hinge", r, f), np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
                               rtol=1e-6)
    np.testing.assert_allclose(g_loss("hinge", f), -f.mean(), rtol=1e-6)
    np.testing.assert_allclose(d_loss("wasserstein", r, f), f.mean() - r.mean(), rtol=1e-6)
    np.testing.assert_allclose(g_loss("wasserstein", f), -f.mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        d_loss("minimax", r, f)


def _critic():
    d = L.serial(L.Conv2D(3, 3, strides=2), L.Tanh, L.Lambda(lambda x: x.reshape(x.shape[:-3] + (-1,))), L.Dense(1))
    _, params, _ = d.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((3, 4, 4, 1), jnp.float64))
    return (lambda p: lambda x: d.apply(p, {}, x)[0][..., 0]), params


def _central_difference(f, args, argnum, direction, h=1e-5):
    plus = list(args)
    minus = list(args)
    plus[argnum] = jax.tree.map(lambda a, v: a + h * v, args[argnum], direction)
    minus[argnum] = jax.tree.map(lambda a, v: a - h * v, args[argnum], direction)
    return (float(f(*plus)) - float(f(*minus))) / (2 * h)


@pytest.mark.parametrize("which", ["wgan-gp", "r1"])
def test_gradient_penalty_value_and_second_order_gradient(which):
    with jax.enable_x64(True):
        critic, params = _critic()
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        k = jax.random.split(jax.random.PRNGKey(3), 4)
        real = jax.random.normal(k[0], (3, 4, 4, 1), jnp.float64)
        fake = jax.random.normal(k[1], (3, 4, 4, 1), jnp.float64)
        if which == "wgan-gp":
            pen = lambda p, r, f: gradient_penalty(critic(p), r, f, k[2])  # noqa: E731
            e = jax.random.uniform(k[2], (3, 1, 1, 1), jnp.float64)
            points, target = e * real + (1 - e) * fake, 1.0
        else:
            pen = lambda p, r, f: r1_penalty(critic(p), r)  # noqa: E731
            points, target = real, None
        # value: the input gradient by finite differences, example by example (all perturbed points in one call)
        flat = np.asarray(points).reshape(3, 1, 16)
        steps = 1e-6 * np.eye(16)[None]
        probe = np.concatenate([flat + steps, flat - steps], axis=1).reshape(-1, 4, 4, 1)   # (3 * 32, 4, 4, 1)
        vals = np.asarray(jax.jit(critic(params))(jnp.asarray(probe))).reshape(3, 2, 16)
        norms = [np.linalg.norm((vals[i, 0] - vals[i, 1]) / 2e-6) for i in range(3)]
        norms = np.array(norms)
        expect = np.mean((norms - target) ** 2) if target is not None else np.mean(norms ** 2)
        args = (params, real, fake)
        pen = jax.jit(pen)  # one compile for the value and the finite differences below, not one per op
        np.testing.assert_allclose(float(pen(*args)), expect, rtol=1e-6)
        # gradient w.r.t. D's params and the images (second order) against central differences
        grads = jax.jit(jax.grad(pen, argnums=(0, 1, 2)))(*args)
        rng = np.random.default_rng(0)
        for argnum in (0, 1, 2):
            for _ in range(2):
                v = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), args[argnum])
                analytic = sum(float(jnp.vdot(g, vv)) for g, vv in zip(jax.tree.leaves(grads[argnum]),
                                                                       jax.tree.leaves(v)))
                np.testing.assert_allclose(analytic, _central_difference(pen, args, argnum, v), rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- the step

@pytest.fixture(scope="session")
def gan_setup():
    g, d = small_pair(spectral_norm=True)
    g_tx, d_tx = optax.adam(1e-2, b1=0.5), optax.adam(1e-2, b1=0.5)
    state = init_gan_state(g, d, (8, Z), (8, 8, 8, 1), g_tx, d_tx, seed=0)
    batch = {"image": np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)}
    steps = {part: jax.jit(make_gan_update(g, d, g_tx, d_tx, z_dim=Z, penalty="r1", part=part))
             for part in ("d", "g", "both")}
    return state, batch, steps


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _all_changed(a, b):
    return all(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_d_step_updates_only_d_and_g_step_only_g(gan_setup):
    state, batch, steps = gan_setup
    s_d, m = steps["d"](state, batch)
    assert _all_changed(state.d_params, s_d.d_params) and _all_changed(state.d_opt[0].mu, s_d.d_opt[0].mu)
    assert _same(state.g_params, s_d.g_params) and _same(state.g_opt, s_d.g_opt) and _same(state.g_ema, s_d.g_ema)
    assert not _same(state.d_state, s_d.d_state)  # spectral-norm vectors advanced
    assert set(m) >= {"d_loss", "d_real", "d_fake", "penalty", "grad_norm"} and float(m["penalty"]) > 0
    s_g, m = steps["g"](state, batch)
    assert _all_changed(state.g_params, s_g.g_params)
    assert _same(state.d_params, s_g.d_params) and _same(state.d_opt, s_g.d_opt) and _same(state.d_state, s_g.d_state)
    assert not _same(state.g_ema, s_g.g_ema) and "g_loss" in m
    s_b, m = steps["both"](state, batch)
    assert int(s_b.step) == 1 and np.isfinite(float(m["grad_norm"]))
    # the combined step is the D part followed by the G part (G against the updated D)
    s_dg, _ = steps["g"](s_d.replace(step=state.step), batch)
    assert _same(s_b.g_params, s_dg.g_params) and _same(s_b.d_params, s_d.d_params)


def test_step_is_deterministic_and_conditional_step_runs():
    g, d = small_pair(num_classes=3)
    tx = optax.adam(1e-3)
    spec_g = (jax.ShapeDtypeStruct((4, Z), jnp.float32), jax.ShapeDtypeStruct((4,), jnp.int32))
    spec_d = (jax.ShapeDtypeStruct((4, 8, 8, 1), jnp.float32), jax.ShapeDtypeStruct((4,), jnp.int32))
    state = init_gan_state(g, d, spec_g, spec_d, tx, tx)
    step = jax.jit(make_gan_update(g, d, tx, tx, z_dim=Z, num_classes=3, loss="hinge", penalty="wgan-gp"))
    batch = {"image": np.random.default_rng(1).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
             "label": np.array([0, 1, 2, 0], np.int32)}
    a, ma = step(state, batch)
    b, mb = step(state, batch)
    assert _same(a, b) and np.isfinite(float(ma["d_loss"])) and float(ma["penalty"]) > 0


# ----------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.4 + 0.5
    m1, c1 = feature_stats(a)
    m2, c2 = feature_stats(b)
    ref = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
    np.testing.assert_allclose(frechet_distance(m1, c1, m2, c2), ref, rtol=1e-8)
    assert frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(sqrtm_psd(c1) @ sqrtm_psd(c1), c1, atol=1e-10)
    # a rank-deficient covariance (fewer samples than dims) stays finite and matches scipy
    m3, c3 = feature_stats(rng.normal(size=(6, 12)))
    ref = np.sum((m1 - m3) ** 2) + np.trace(c1) + np.trace(c3) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c3).real)
    np.testing.assert_allclose(frechet_distance(m1, c1, m3, c3), ref, rtol=1e-6)


def test_step_takes_loss_and_penalty_callables_and_the_layers_moved_with_old_paths_kept():
    import deepcore.frechet
    import deepcore.gan.frechet
    import deepcore.models.gan as old
    from deepcore.gan import GANLoss, losses
    from deepcore.gan.penalties import PENALTIES

    g, d = small_pair()
    tx = optax.adam(1e-2, b1=0.5)
    state = init_gan_state(g, d, (4, Z), (4, 8, 8, 1), tx, tx, seed=0)
    batch = {"image": np.random.default_rng(2).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)}
    calls = []

    def my_d(r, f):             # hinge, written out: the step must call exactly this
        calls.append("d")
        return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))

    def my_pen(d_fn, real, fake, key):
        calls.append("pen")
        return r1_penalty(d_fn, real)

    mine = make_gan_update(g, d, tx, tx, z_dim=Z, loss=GANLoss(my_d, lambda f: -jnp.mean(f)), penalty=my_pen)
    named = make_gan_update(g, d, tx, tx, z_dim=Z, loss=losses.hinge, penalty="r1")
    a, ma = jax.jit(mine)(state, batch)
    b, mb = jax.jit(named)(state, batch)
    assert calls == ["d", "pen"] and _same(a, b) and float(ma["d_loss"]) == float(mb["d_loss"])
    assert float(ma["penalty"]) > 0 and PENALTIES["wgan-gp"] is gradient_penalty
    with pytest.raises(ValueError, match="unknown GAN penalty 'r2'"):
        make_gan_update(g, d, tx, tx, z_dim=Z, penalty="r2")
    with pytest.raises(ValueError, match="unknown GAN loss 'minimax'"):
        make_gan_update(g, d, tx, tx, z_dim=Z, loss="minimax")
    # generic layers in deepcore.layers, the old import paths still work
    assert old.PhaseConvTranspose is L.PhaseConvTranspose and old.SpectralNorm is L.SpectralNorm
    assert old.spectral_normalize is L.spectral_normalize
    assert deepcore.frechet.frechet_distance is deepcore.gan.frechet.frechet_distance


def test_fid_classifier_is_cached_and_the_score_is_the_frechet_distance_of_its_features(tmp_path):
    from deepcore.gan import fid
    from deepcore.gan.grid import save_grid

    rng = np.random.default_rng(0)
    arrays = {"image": rng.integers(0, 256, (256, 28, 28, 1), dtype=np.uint8), "label": rng.integers(0, 10, 256)}
    path = str(tmp_path / fid.cache_name("toy", 0.5))
    params, trained = fid.load_classifier(path, arrays, epochs=0.5, seed=0)
    again, trained_again = fid.load_classifier(path, arrays, epochs=0.5, seed=0)
    assert trained and not trained_again and _same(params, again)      # the second call reads the cache
    images = fid.unit(arrays["image"])
    assert images.min() >= -1 and images.max() <= 1
    score = fid.FrechetScore(again, images[:100])
    feats = score.features(images[100:200])
    assert feats.shape == (100, 128)
    assert score(images[100:200]) == pytest.approx(frechet_distance(*feature_stats(score.features(images[:100])),
                                                                    *feature_stats(feats)), rel=1e-12)
    assert score(images[:100]) == pytest.approx(0.0, abs=1e-6)
    pred = score.predict(images[:10])
    assert score.class_match(images[:10], pred) == 1.0 and score.class_match(images[:10], (pred + 1) % 10) == 0.0
    out = save_grid(images[:6], str(tmp_path / "g.png"), 2)
    from PIL import Image
    assert Image.open(out).size == (3 * (3 * 30 + 2), 3 * (2 * 30 + 2))
