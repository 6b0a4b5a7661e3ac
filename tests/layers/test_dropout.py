"""Dropout: the drop rate and the 1/(1-rate) scaling, checked statistically; eval/rate-0 identity."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import layers as L

N = 200_000


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_drop_fraction_and_scaling(rate):
    x = jnp.ones((N,))
    y, _ = L.Dropout(rate).apply({}, {}, x, key=jax.random.PRNGKey(0), train=True)
    y = np.asarray(y)
    kept = y != 0
    # kept units are scaled exactly by 1/(1 - rate)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    # fraction dropped ~ Binomial(N, rate) / N: within 5 standard deviations
    sd = np.sqrt(rate * (1 - rate) / N)
    assert abs((1 - kept.mean()) - rate) < 5 * sd
    # the mean is preserved: y has mean 1 and variance rate / (1 - rate)
    assert abs(y.mean() - 1) < 5 * np.sqrt(rate / (1 - rate) / N)


def test_identity_in_eval_and_at_rate_zero_and_zero_at_rate_one():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    y, _ = L.Dropout(0.5).apply({}, {}, x, train=False)
    np.testing.assert_array_equal(y, x)
    y, _ = L.Dropout(0.0).apply({}, {}, x, train=True)  # no key needed: nothing is drawn
    np.testing.assert_array_equal(y, x)
    y, _ = L.Dropout(1.0).apply({}, {}, x, key=jax.random.PRNGKey(0), train=True)
    np.testing.assert_array_equal(y, jnp.zeros_like(x))


def test_rate_must_be_a_probability():
    with pytest.raises(ValueError, match="drop probability"):
        L.Dropout(1.5)


def test_broadcast_dims_share_the_mask():
    x = jnp.ones((2, 6, 6, 32))
    y, _ = L.Dropout(0.5, broadcast_dims=(1, 2)).apply({}, {}, x, key=jax.random.PRNGKey(3), train=True)
    y = np.asarray(y)
    # each (example, channel) is either dropped everywhere or kept everywhere
    assert np.all(y == y[:, :1, :1, :])
    assert 0 < (y[:, 0, 0, :] == 0).mean() < 1


def test_bfloat16_scaling_stays_in_dtype():
    x = jnp.ones((1000,), jnp.bfloat16)
    y, _ = L.Dropout(0.5).apply({}, {}, x, key=jax.random.PRNGKey(0), train=True)
    assert y.dtype == jnp.bfloat16
    assert set(np.unique(np.asarray(y, np.float32))) == {0.0, 2.0}
