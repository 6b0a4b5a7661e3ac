"""Remat policies on the transformer stack: scanned equals unrolled (outputs and gradients) under every policy;
the scanned stack's default body policy changes no value; named activations are what "names:" keeps; packed
sequences through the LM."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.models import transformer_stack
from deepcore.models.transformer import LMConfig, lm_apply, lm_init, to_scanned, to_unscanned

pytestmark = pytest.mark.xdist_group("models_test_transformer_remat")

CFG = LMConfig(vocab_size=13, d_model=16, num_layers=2, num_heads=4, num_kv_heads=2, max_len=12, dropout=0.1)
POLICIES = [None, "nothing", "dots", "dots_no_batch", "names:mlp_hidden,attn_out"]


@pytest.fixture(scope="session")
def setup():
    params = jax.jit(lm_init, static_argnums=0)(CFG, jax.random.PRNGKey(0))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 0, CFG.vocab_size)
    return params, tokens


def loss(cfg, params, tokens):   # train mode with dropout: keys consumed alike in both layouts and under remat
    return jnp.mean(lm_apply(cfg, params, tokens, key=jax.random.PRNGKey(3), train=True)[0] ** 2)


def loss_and_grad(cfg, params, tokens):
    return jax.jit(jax.value_and_grad(lambda p: loss(cfg, p, tokens)))(params)


@pytest.fixture(scope="session")
def reference(setup):
    params, tokens = setup
    l0, g0 = loss_and_grad(CFG.replace(scan=False), to_unscanned(params), tokens)   # unrolled, no remat anywhere
    return l0, to_scanned(g0)


@pytest.mark.parametrize("policy", POLICIES)
def test_scanned_equals_unrolled_under_every_remat_policy(setup, reference, policy):
    params, tokens = setup

    @jax.jit
    def both(p):   # one program for the two layouts: one compile per policy
        scanned = jax.value_and_grad(lambda p: loss(CFG.replace(remat=policy), p, tokens))(p)
        unrolled = jax.value_and_grad(lambda q: loss(CFG.replace(remat=policy, scan=False), q, tokens))(
            to_unscanned(p))
        return scanned, unrolled

    (l1, g1), (l2, g2) = both(params)
    for l, g in ((l2, to_scanned(g2)), reference):
        np.testing.assert_allclose(l1, l, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g)


def test_offload_policy_keeps_names_on_a_cpu_and_offloads_elsewhere():
    from deepcore.layers.remat import remat_policy
    assert remat_policy("offload:a", backend="cpu") is not None
    assert remat_policy("offload:a", backend="gpu") is not None
    with pytest.raises(ValueError, match="offload:<a,b>"):
        remat_policy("offload:")


def test_scan_body_policy_changes_no_value(setup, monkeypatch):
    params, tokens = setup
    l1, g1 = loss_and_grad(CFG, params, tokens)
    monkeypatch.setattr(transformer_stack, "SCAN_POLICY", None)   # the plain scan: every residual saved
    l2, g2 = loss_and_grad(CFG, params, tokens)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g2)


def test_policies_keep_less_than_the_plain_scan(setup, monkeypatch):
    """What each policy keeps, by XLA's compiled temporary memory: nothing < names < dots <= plain scan."""
    params, tokens = setup
    big = CFG.replace(d_model=64, max_len=64, dropout=0.0)
    params = jax.jit(lm_init, static_argnums=0)(big, jax.random.PRNGKey(0))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (4, 64), 0, big.vocab_size)

    def temp(cfg):
        f = jax.jit(jax.grad(lambda p: jnp.mean(lm_apply(cfg, p, tokens)[0] ** 2)))
        return f.lower(params).compile().memory_analysis().temp_size_in_bytes

    default, nothing = temp(big), temp(big.replace(remat="nothing"))
    monkeypatch.setattr(transformer_stack, "SCAN_POLICY", None)
    plain = temp(big)
    assert nothing < default < plain, (nothing, default, plain)


def test_unknown_remat_policy_fails_at_configuration():
    with pytest.raises(ValueError, match="remat policy must be one of"):
        CFG.replace(remat="sometimes")


def test_packed_sequences_in_the_lm_equal_separate_sequences(setup):
    params, tokens = setup
    cfg = CFG.replace(positions="rope", dropout=0.0)   # rotary: relative positions, so a packed tail is exact
    params = jax.jit(lm_init, static_argnums=0)(cfg, jax.random.PRNGKey(0))
    seg = jnp.array([[0] * 5 + [1] * 7, [0] * 12])
    packed = lm_apply(cfg, params, tokens, segment_ids=seg)[0]
    head = lm_apply(cfg, params, tokens[:1, :5])[0]
    tail = lm_apply(cfg, params, tokens[:1, 5:])[0]
    np.testing.assert_allclose(packed[:1, :5], head, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(packed[:1, 5:], tail, rtol=1e-4, atol=1e-4)
