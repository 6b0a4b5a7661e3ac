"""Greedy and beam search over any autoregressive step function, and their use with the encoder-decoder.

A step function ``step(tokens (N,), state, index) -> (logits (N, V), state)`` scores the next token after
``tokens`` (the token at position ``index``); ``state`` is any pytree whose leaves have a leading axis ``N``
(a KV cache, a buffer of tokens), reordered with the beams.

* :func:`greedy_search`: the argmax token at each step; after ``eos_id``, ``pad_id``.
* :func:`beam_search`: ``beam_width`` hypotheses per batch row ranked by the length-normalised log-probability
  ``sum(log p) / length ** length_penalty`` (``length`` counts the tokens up to and including EOS); a finished
  hypothesis stays in its beam, continued by ``pad_id`` at no cost, until all are finished or ``max_len``
  tokens are out. With ``beam_width=1`` this is greedy search (every candidate has the same length).
* :func:`seq2seq_step`: the step function of :mod:`deepcore.models.seq2seq` with the KV cache (the source
  encoded and its cross-attention keys and values computed once), or recomputing the whole decoder prefix at
  each step (``cached=False``, the reference).

Both searches are plain JAX (``lax.scan`` over ``max_len`` steps); jit them with the step function closed over.
"""
import jax
import jax.numpy as jnp

from deepcore.models.seq2seq import Seq2SeqConfig, decode, decoder_cache, encode, memory_kvs


def greedy_search(step, state, batch_size: int, *, max_len: int, bos_id: int, eos_id: int, pad_id: int = 0):
    """``(tokens (B, max_len) int32, log_prob (B,))``: argmax decoding from ``bos_id``; the log-probability
    sums the chosen tokens up to and including EOS."""
    def body(carry, index):
        last, state, done, score = carry
        logits, state = step(last, state, index)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        tok = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        score = score + jnp.where(done, 0.0, jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0])
        tok = jnp.where(done, pad_id, tok)
        return (tok, state, done | (tok == eos_id), score), tok

    init = (jnp.full((batch_size,), bos_id, jnp.int32), state, jnp.zeros((batch_size,), bool),
            jnp.zeros((batch_size,), jnp.float32))
    (_, _, _, score), toks = jax.lax.scan(body, init, jnp.arange(max_len))
    return toks.T, score


def tile_beams(tree, beam_width: int):
    """Repeat every leaf's leading axis ``beam_width`` times: ``(B, ...) -> (B * W, ...)``, beams of a row adjacent."""
    return jax.tree.map(lambda a: jnp.repeat(a, beam_width, axis=0), tree)


def beam_search(step, state, batch_size: int, *, beam_width: int, max_len: int, bos_id: int, eos_id: int,
                pad_id: int = 0, length_penalty: float = 1.0):
    """``(tokens (B, W, max_len) int32, scores (B, W))``, best first; ``state`` leaves lead with ``B * W``
    (:func:`tile_beams`). ``scores``: the length-normalised log-probabilities."""
    b, w = batch_size, beam_width
    neg = jnp.float32(-jnp.inf)

    def body(carry, index):
        last, state, tokens, logp_sum, lengths, done = carry
        logits, state = step(last, state, index)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, w, -1)
        v = logp.shape[-1]
        pad_only = jnp.where(jnp.arange(v) == pad_id, 0.0, neg)
        cand = logp_sum[..., None] + jnp.where(done[..., None], pad_only, logp)          # (B, W, V)
        new_len = jnp.where(done, lengths, lengths + 1)
        norm = cand / (new_len[..., None].astype(jnp.float32) ** length_penalty)
        _, flat = jax.lax.top_k(norm.reshape(b, w * v), w)                               # (B, W)
        beam, tok = flat // v, (flat % v).astype(jnp.int32)
        pick = lambda a: jnp.take_along_axis(a, beam, axis=1)  # noqa: E731
        logp_sum = jnp.take_along_axis(cand.reshape(b, w * v), flat, axis=1)
        lengths, was_done = pick(new_len), pick(done)
        tokens = jnp.take_along_axis(tokens, beam[..., None], axis=1).at[:, :, index].set(tok)
        rows = (jnp.arange(b)[:, None] * w + beam).reshape(-1)
        state = jax.tree.map(lambda a: a[rows], state)
        return (tok.reshape(-1), state, tokens, logp_sum, lengths, was_done | (tok == eos_id)), None

    init = (jnp.full((b * w,), bos_id, jnp.int32), state, jnp.full((b, w, max_len), pad_id, jnp.int32),
            jnp.where(jnp.arange(w) == 0, 0.0, neg)[None].repeat(b, 0), jnp.zeros((b, w), jnp.int32),
            jnp.zeros((b, w), bool))
    (_, _, tokens, logp_sum, lengths, _), _ = jax.lax.scan(body, init, jnp.arange(max_len))
    scores = logp_sum / jnp.maximum(lengths, 1).astype(jnp.float32) ** length_penalty
    order = jnp.argsort(-scores, axis=1)
    return jnp.take_along_axis(tokens, order[..., None], axis=1), jnp.take_along_axis(scores, order, axis=1)


def seq2seq_step(cfg: Seq2SeqConfig, params, source, source_mask=None, *, beam_width: int = 1, max_len=None,
                 cached: bool = True):
    """``(step, state)`` for the searches: ``source (B, S)`` is encoded once and each decoder block's
    cross-attention keys and values computed once (repeated ``beam_width`` times per row); the step runs one
    token through the decoder with a KV cache of ``max_len`` (default ``max_target_len``), or with
    ``cached=False`` the whole prefix so far (state: the token buffer)."""
    max_len = max_len or cfg.max_target_len
    kvs = tile_beams(memory_kvs(cfg, params, encode(cfg, params, source, source_mask)), beam_width)
    mask = None if source_mask is None else tile_beams(source_mask, beam_width)
    n = source.shape[0] * beam_width
    if cached:
        def step(tokens, cache, index):
            logits, cache = decode(cfg, params, tokens[:, None], kvs, mask, cache=cache, index=index)
            return logits[:, 0], cache

        return step, decoder_cache(cfg, params, (n,), max_len)

    def step_full(tokens, buffer, index):
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, tokens, index, axis=1)
        logits, _ = decode(cfg, params, buffer, kvs, mask)
        return jax.lax.dynamic_index_in_dim(logits, index, axis=1, keepdims=False), buffer

    return step_full, jnp.zeros((n, max_len), jnp.int32)


__all__ = ["greedy_search", "beam_search", "tile_beams", "seq2seq_step"]
