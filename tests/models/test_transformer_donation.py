"""Regression: an unscanned transformer's parameters must not share buffers (a donated step would reject them)."""
import jax
import jax.numpy as jnp
import optax

from deepcore.models.transformer import TransformerLM
from deepcore.train import classifier_loss, init_state, train_step


def test_unscanned_lm_trains_with_a_donated_step():
    model = TransformerLM(vocab_size=11, d_model=16, num_layers=2, num_heads=2, max_len=8, scan=False)
    tx = optax.sgd(0.1)
    state = init_state(model, jax.ShapeDtypeStruct((2, 8), jnp.int32), tx)
    leaves = jax.tree.leaves(state.params)
    assert len({id(x) for x in leaves}) == len(leaves), "two parameter leaves share one array"
    step = train_step(classifier_loss(model), tx)  # donates the state's buffers
    batch = {"x": jnp.zeros((2, 8), jnp.int32), "y": jnp.ones((2, 8), jnp.int32)}
    state, m1 = step(state, batch)
    state, m2 = step(state, batch)
    assert float(m2["loss"]) < float(m1["loss"])
