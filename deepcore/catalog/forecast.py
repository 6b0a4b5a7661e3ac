"""Cases for the forecasters (:mod:`deepcore.models.forecast`) and the pinball loss."""
import jax
import jax.numpy as jnp

from deepcore import losses
from deepcore.catalog.case import Case, FunctionCase
from deepcore.models.forecast import causal_conv_block, forecaster

LAYER_CASES = [
    Case("causal_conv_block", lambda: causal_conv_block(3, 3, dilation=2), (2, 7, 3), smooth=False),
]

MODEL_CASES = [
    Case("forecaster_gru", lambda: forecaster("gru", 3, hidden=5), (2, 8)),
    Case("forecaster_lstm_quantiles", lambda: forecaster("lstm", 3, num_quantiles=3, hidden=4, depth=2), (2, 8)),
    Case("forecaster_tcn", lambda: forecaster("tcn", 2, hidden=4, depth=2), (2, 8), smooth=False),
    Case("forecaster_transformer", lambda: forecaster("transformer", 2, hidden=8, heads=2, patch=3), (2, 8)),
]


def _pinball(key):
    """The quantile loss at three levels (targets are not perturbed)."""
    k1, k2 = jax.random.split(key)
    pred, y = jax.random.normal(k1, (4, 3, 3)), jax.random.normal(k2, (4, 3))
    return (lambda p, t: losses.pinball(p, t, jnp.array([0.1, 0.5, 0.9]))), (pred, y)


FUNCTION_CASES = [FunctionCase("pinball", _pinball, argnums=(0,), argnames=("predictions",), smooth=False)]
