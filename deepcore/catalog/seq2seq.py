"""Cases for cross-attention (:mod:`deepcore.layers.cross_attention`) and the encoder-decoder
(:mod:`deepcore.models.seq2seq`): the layer on one input (attending to itself), and as functions of their
parameters and inputs with a separate, padded memory (gradient-checked)."""
import jax
import jax.numpy as jnp
import optax

from deepcore.catalog.case import Case, FunctionCase
from deepcore.layers.cross_attention import CrossAttention, cross_attention, init_cross_attention
from deepcore.models.seq2seq import Seq2SeqConfig, seq2seq_apply, seq2seq_init

LAYER_CASES = [
    Case("cross_attention_self", lambda: CrossAttention(2), (2, 5, 8)),
    Case("cross_attention_gqa_out", lambda: CrossAttention(4, num_kv_heads=2, out_features=3, use_bias=False),
         (2, 5, 8)),
]

MASK = jnp.array([[True, True, True, False], [True, True, True, True]])


def _cross(key):
    k1, k2, k3 = jax.random.split(key, 3)
    params = init_cross_attention(k1, 8, 2, d_memory=6)
    x, memory = jax.random.normal(k2, (2, 5, 8)), jax.random.normal(k3, (2, 4, 6))
    fn = lambda p, x, m: cross_attention(p, x, m, memory_mask=MASK, num_heads=2)  # noqa: E731
    return fn, (params, x, memory)


def _encoder_decoder(key):
    cfg = Seq2SeqConfig(vocab_size=9, d_model=8, encoder_layers=1, decoder_layers=2, num_heads=2,
                        max_source_len=4, max_target_len=5, approximate_gelu=False)
    k1, k2, k3 = jax.random.split(key, 3)
    params = seq2seq_init(cfg, k1)
    source, target = jax.random.randint(k2, (2, 4), 0, 9), jax.random.randint(k3, (2, 6), 0, 9)

    def loss(params):
        logits = seq2seq_apply(cfg, params, source, target[:, :-1], MASK)
        return optax.softmax_cross_entropy_with_integer_labels(logits, target[:, 1:]).mean()

    return loss, (params,)


FUNCTION_CASES = [
    FunctionCase("cross_attention_memory_mask", _cross, argnums=(0, 1, 2), argnames=("params", "x", "memory")),
    FunctionCase("encoder_decoder_loss", _encoder_decoder, argnums=(0,), argnames=("params",)),
]
