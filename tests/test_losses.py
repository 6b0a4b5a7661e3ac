"""Each loss against a numpy formula, with weights, masks, reductions, label smoothing and sequences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import losses

RNG = np.random.default_rng(0)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def weighted_mean(loss, w):
    w = np.broadcast_to(w.reshape(w.shape + (1,) * (loss.ndim - w.ndim)), loss.shape)
    return (loss * w).sum() / w.sum()


P = RNG.normal(size=(6, 3)).astype(np.float32)
T = RNG.normal(size=(6, 3)).astype(np.float32)
W = RNG.uniform(0.1, 2.0, size=(6,)).astype(np.float32)
M = np.array([True, False, True, True, False, True])


def huber_np(e, d):
    a = np.abs(e)
    return np.where(a <= d, 0.5 * e ** 2, d * (a - 0.5 * d))


REGRESSION = [
    ("mse", lambda p, t, **kw: losses.mse(p, t, **kw), lambda e: e ** 2),
    ("mae", lambda p, t, **kw: losses.mae(p, t, **kw), np.abs),
    ("huber", lambda p, t, **kw: losses.huber(p, t, delta=0.5, **kw), lambda e: huber_np(e, 0.5)),
]


@pytest.mark.parametrize("name,fn,ref", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_losses(name, fn, ref):
    el = ref(P - T)
    np.testing.assert_allclose(fn(P, T), el.mean(), rtol=1e-5)
    np.testing.assert_allclose(fn(P, T, reduction="sum"), el.sum(), rtol=1e-5)
    np.testing.assert_allclose(fn(P, T, reduction="none"), el, rtol=1e-5)
    np.testing.assert_allclose(fn(P, T, weights=W), weighted_mean(el, W), rtol=1e-5)
    # mask: mean of per-example means over the kept examples only
    np.testing.assert_allclose(fn(P, T, mask=M), el[M].mean(), rtol=1e-5)
    np.testing.assert_allclose(fn(P, T, weights=W, mask=M), weighted_mean(el[M], W[M]), rtol=1e-5)
    np.testing.assert_allclose(fn(P, T, mask=M, reduction="sum"), el[M].sum(), rtol=1e-5)
    none = np.asarray(fn(P, T, mask=M, reduction="none"))
    assert none.shape == el.shape and np.all(none[~M] == 0)


def test_huber_matches_mse_half_inside_delta():
    small = P * 1e-2
    np.testing.assert_allclose(losses.huber(small, 0 * small, delta=1.0), 0.5 * (small ** 2).mean(), rtol=1e-5)


LOGITS = RNG.normal(size=(5, 4)).astype(np.float32) * 2
LABELS = np.array([0, 3, 1, 1, 2])


def test_softmax_cross_entropy_integer_labels():
    ref = -log_softmax(LOGITS)[np.arange(5), LABELS]
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS), ref.mean(), rtol=1e-5)
    w = W[:5]
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS, weights=w), (ref * w).sum() / w.sum(),
                               rtol=1e-5)
    m = M[:5]
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS, mask=m), ref[m].mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS, reduction="none"), ref, rtol=1e-5)


@pytest.mark.parametrize("a", [0.1, 0.3])
def test_label_smoothing(a):
    k = LOGITS.shape[-1]
    target = (1 - a) * np.eye(k)[LABELS] + a / k
    ref = -(target * log_softmax(LOGITS)).sum(-1)
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=a), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.softmax_cross_entropy_onehot(LOGITS, np.eye(k)[LABELS], label_smoothing=a),
                               ref.mean(), rtol=1e-5)


def test_softmax_cross_entropy_soft_labels():
    soft = np.exp(log_softmax(RNG.normal(size=(5, 4)))).astype(np.float32)
    ref = -(soft * log_softmax(LOGITS)).sum(-1)
    np.testing.assert_allclose(losses.softmax_cross_entropy_onehot(LOGITS, soft), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.softmax_cross_entropy_onehot(LOGITS, soft, mask=M[:5]), ref[M[:5]].mean(),
                               rtol=1e-5)


def test_sequence_mask_language_model():
    b, t, k = 3, 7, 11
    logits = RNG.normal(size=(b, t, k)).astype(np.float32)
    labels = RNG.integers(0, k, size=(b, t))
    lengths = np.array([7, 3, 0])
    mask = np.arange(t)[None, :] < lengths[:, None]
    labels[~mask] = -1  # padding ids never reach the loss
    logits[2, :, :] = np.inf  # nor do garbage logits of an all-padding row
    ce = -log_softmax(np.where(np.isfinite(logits), logits, 0))[np.arange(b)[:, None], np.arange(t), labels]
    got = losses.softmax_cross_entropy(logits, labels, mask=mask)
    np.testing.assert_allclose(got, ce[mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels, mask=mask, reduction="sum"),
                               ce[mask].sum(), rtol=1e-5)
    g = jax.grad(lambda x: losses.softmax_cross_entropy(x, labels, mask=mask))(jnp.asarray(logits))
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_all_masked_is_zero_with_zero_gradient():
    none = np.zeros(5, bool)
    assert float(losses.softmax_cross_entropy(LOGITS, LABELS, mask=none)) == 0.0
    assert float(losses.mse(P, T, mask=np.zeros(6, bool))) == 0.0
    g = jax.grad(lambda x: losses.softmax_cross_entropy(x, LABELS, mask=none))(jnp.asarray(LOGITS))
    assert np.all(np.asarray(g) == 0)


def test_binary_cross_entropy_with_logits():
    x = RNG.normal(size=(6, 3)).astype(np.float32) * 3
    y = RNG.uniform(size=(6, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-x))
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(losses.binary_cross_entropy_with_logits(x, y), ref.mean(), rtol=1e-4)
    np.testing.assert_allclose(losses.binary_cross_entropy_with_logits(x, y, weights=W), weighted_mean(ref, W),
                               rtol=1e-4)
    np.testing.assert_allclose(losses.binary_cross_entropy_with_logits(x, y, mask=M), ref[M].mean(), rtol=1e-4)


def test_kl_divergence_direction():
    q = np.exp(log_softmax(RNG.normal(size=(5, 4)))).astype(np.float32)
    q[0] = [0.5, 0.5, 0.0, 0.0]  # zero target probabilities contribute nothing
    logp = log_softmax(LOGITS)
    ref = (q * (np.log(np.where(q > 0, q, 1)) - logp)).sum(-1)  # KL(q || p)
    np.testing.assert_allclose(losses.kl_divergence(logp, q), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.kl_divergence(logp, q, mask=M[:5]), ref[M[:5]].mean(), rtol=1e-5)
    assert float(losses.kl_divergence(np.log(q[1:]), q[1:])) == pytest.approx(0.0, abs=1e-6)


def test_bfloat16_logits_compute_in_float32():
    got = losses.softmax_cross_entropy(jnp.asarray(LOGITS, jnp.bfloat16), LABELS)
    assert got.dtype == jnp.float32
    ref = -log_softmax(np.asarray(jnp.asarray(LOGITS, jnp.bfloat16), np.float32))[np.arange(5), LABELS]
    np.testing.assert_allclose(got, ref.mean(), rtol=1e-5)


def test_float64_stays_float64():
    with jax.enable_x64(True):
        got = losses.mse(P.astype(np.float64), T.astype(np.float64), mask=M)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, ((P.astype(np.float64) - T) ** 2)[M].mean(), rtol=1e-12)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(P, T, reduction="avg")
    with pytest.raises(ValueError, match="weights"):
        losses.mse(P, T, weights=np.ones(5))
    with pytest.raises(ValueError, match="boolean"):
        losses.mse(P, T, mask=np.ones(6))
    with pytest.raises(ValueError, match=r"labels \(\.\.\.\)"):
        losses.softmax_cross_entropy(LOGITS, LABELS[:4])
    with pytest.raises(ValueError, match="integers"):
        losses.softmax_cross_entropy(LOGITS, LABELS.astype(np.float32))


# ----------------------------------------------------------------------------- refused inputs

LOGITS3 = RNG.normal(size=(4, 3)).astype(np.float32)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_labels_are_refused_when_concrete_and_nan_under_jit(bad, smoothing):
    labels = np.array([0, 2, bad, 1])
    with pytest.raises(ValueError, match=rf"^softmax_cross_entropy: expected integer labels in \[0, 3\), got {bad} "
                                         r"at index \(2,\)$"):
        losses.softmax_cross_entropy(LOGITS3, labels, label_smoothing=smoothing)
    def loss(lg, lb, mask=None):
        return losses.softmax_cross_entropy(lg, lb, mask=mask, label_smoothing=smoothing)

    assert np.isnan(jax.jit(loss)(LOGITS3, labels))               # today: NaN or a silently wrong finite value
    # masked-out entries (padding) may hold anything, eagerly and under jit
    keep = np.array([True, True, False, True])
    want = loss(LOGITS3[keep], labels[keep])
    for f in (loss, jax.jit(loss)):
        np.testing.assert_allclose(f(LOGITS3, labels, mask=keep), want, rtol=1e-6)


@pytest.mark.parametrize("loss,args", [
    ("softmax_cross_entropy", (np.zeros((0, 3), np.float32), np.zeros((0,), np.int32))),
    ("softmax_cross_entropy_onehot", (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))),
    ("mse", (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))),
])
def test_an_empty_batch_is_refused_eagerly_and_under_jit(loss, args):
    fn = getattr(losses, loss)
    for f in (fn, jax.jit(fn)):
        with pytest.raises(ValueError, match=rf"^{loss}: expected a non-empty batch, got a per-example loss of shape"):
            f(*args)
