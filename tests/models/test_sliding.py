"""deepcore.models.sliding: sampling longer than the context, window after window."""
import numpy as np


def test_sliding_generate_equals_greedy_decoding_of_each_window():
    """Greedy: each new token is the argmax of the model run (no cache) on the window it was drawn in: the
    chunk's prompt (the newest max_len // 2 tokens) plus the chunk's tokens so far."""
    import jax
    import jax.numpy as jnp

    from deepcore.models.sliding import generate_sliding
    from deepcore.models.transformer import LMConfig, lm_apply, lm_init

    cfg = LMConfig(vocab_size=11, d_model=16, num_layers=1, num_heads=2, max_len=8)
    raw = lm_init(cfg, jax.random.PRNGKey(3))
    params = jax.tree.map(lambda a: a * 8.0 if a.ndim == 2 else a, raw)   # sharper logits: no near-ties
    prompt = np.array([[1, 4], [7, 2]], np.int32)
    got = np.asarray(generate_sliding(cfg, params, prompt, 15, jax.random.PRNGKey(0), 0.0))
    assert got.shape == (2, 15)

    @jax.jit
    def last_logits(window, n):   # causal: the padding after position n - 1 changes nothing before it
        return jax.vmap(lambda row: lm_apply(cfg, params, row)[0][n - 1])(window)

    seq, ctx, want = prompt, prompt, []           # chunks: 6 tokens (from the 2-token prompt), then 4, 4, 4
    while len(want) < 15:
        for _ in range(cfg.max_len - ctx.shape[1]):
            window = np.zeros((2, cfg.max_len), np.int32)
            window[:, :ctx.shape[1]] = ctx
            tok = np.asarray(jnp.argmax(last_logits(window, ctx.shape[1]), -1), np.int32)[:, None]
            ctx, seq = np.concatenate([ctx, tok], 1), np.concatenate([seq, tok], 1)
            want.append(tok[:, 0])
        ctx = seq[:, -(cfg.max_len // 2):]
    np.testing.assert_array_equal(got, np.stack(want[:15], 1))
    sampled = [np.asarray(generate_sliding(cfg, raw, prompt, 6, jax.random.PRNGKey(s), 1.0, top_k=3))
               for s in (0, 0, 1)]
    np.testing.assert_array_equal(sampled[0], sampled[1])                 # seeded
    assert not np.array_equal(sampled[0], sampled[2])
