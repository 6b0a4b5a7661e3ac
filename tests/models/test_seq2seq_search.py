"""The encoder-decoder (KV-cache decoding == full recomputation, source padding ignored) and greedy / beam search
(beam width 1 == greedy, a hand-made model whose best beam is known, exhaustive beams == brute force)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.core import ShapeError
from deepcore.models.search import beam_search, greedy_search, seq2seq_step, tile_beams
from deepcore.models.seq2seq import (EncoderDecoder, Seq2SeqConfig, decode, decoder_cache, encode, memory_kvs,
                                     seq2seq_apply, seq2seq_init)

CFG = Seq2SeqConfig(vocab_size=11, d_model=16, encoder_layers=2, decoder_layers=2, num_heads=2, max_source_len=7,
                    max_target_len=6)
PAD, BOS, EOS = 0, 1, 2


@pytest.fixture(scope="session")
def model():
    params = seq2seq_init(CFG, jax.random.PRNGKey(0))
    params["embed"]["w"] = params["embed"]["w"] * 50   # sharper distributions: distinct greedy / beam choices
    source = jax.random.randint(jax.random.PRNGKey(1), (3, 7), 3, 11)
    mask = jnp.arange(7)[None] < jnp.array([7, 4, 2])[:, None]
    return params, source, mask


def test_cached_decoding_equals_full_recomputation(model):
    params, source, mask = model
    target = jax.random.randint(jax.random.PRNGKey(2), (3, 6), 3, 11)
    full = seq2seq_apply(CFG, params, source, target, mask)
    kvs, cache = memory_kvs(CFG, params, encode(CFG, params, source, mask)), decoder_cache(CFG, params, (3,))
    steps = []
    for i in range(6):
        logits, cache = decode(CFG, params, target[:, i:i + 1], kvs, mask, cache=cache, index=i)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-4, atol=1e-4)
    for beam_width in (1, 3):
        runs = [seq2seq_step(CFG, params, source, mask, beam_width=beam_width, cached=c) for c in (True, False)]
        cached, uncached = (beam_search(s, st, 3, beam_width=beam_width, max_len=6, bos_id=BOS, eos_id=EOS)
                            for s, st in runs)
        np.testing.assert_array_equal(cached[0], uncached[0])
        np.testing.assert_allclose(cached[1], uncached[1], rtol=1e-5)


def test_source_padding_is_ignored(model):
    params, source, mask = model
    target = jnp.full((3, 4), 5)
    other = jnp.where(mask, source, 7)
    np.testing.assert_allclose(seq2seq_apply(CFG, params, source, target, mask),
                               seq2seq_apply(CFG, params, other, target, mask), rtol=1e-5, atol=1e-5)


def test_beam_width_one_is_greedy(model):
    params, source, mask = model
    step, state = seq2seq_step(CFG, params, source, mask)
    greedy, g_logp = greedy_search(step, state, 3, max_len=6, bos_id=BOS, eos_id=EOS)
    step, state = seq2seq_step(CFG, params, source, mask, beam_width=1)
    beams, scores = beam_search(step, state, 3, beam_width=1, max_len=6, bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(beams[:, 0], greedy)
    lengths = np.array([list(r).index(EOS) + 1 if EOS in r else 6 for r in np.asarray(greedy)])
    np.testing.assert_allclose(scores[:, 0], np.asarray(g_logp) / lengths, rtol=1e-5)
    wide, wide_scores = beam_search(*seq2seq_step(CFG, params, source, mask, beam_width=4), 3, beam_width=4,
                                    max_len=6, bos_id=BOS, eos_id=EOS)
    assert np.all(np.diff(np.asarray(wide_scores), axis=1) <= 0)          # best first
    assert np.all(np.asarray(wide_scores)[:, 0] >= np.asarray(scores)[:, 0] - 1e-6)


# a hand-made Markov model over {pad, bos, eos, a, b}: the next token's probabilities depend on the last token
A, B = 3, 4
TABLE = np.full((5, 5), 1e-6)
TABLE[BOS, [A, B]] = [0.55, 0.45]              # greedy takes a ...
TABLE[A, [EOS, A, B]] = [0.30, 0.36, 0.34]     # ... and then nothing good follows a
TABLE[B, [EOS, A, B]] = [0.95, 0.03, 0.02]     # b then EOS: the best sequence
TABLE[EOS, EOS] = TABLE[PAD, PAD] = 1.0
LOGITS = jnp.log(jnp.asarray(TABLE, jnp.float32))


def markov_step(tokens, state, index):
    return LOGITS[tokens], state


def brute_force(log_probs, max_len, alpha):
    """The best length-normalised sequence over a, b (ending at EOS, or unfinished at max_len), by enumeration."""
    finished = [(*body, EOS) for n in range(max_len) for body in itertools.product([A, B], repeat=n)]
    unfinished = list(itertools.product([A, B], repeat=max_len))
    best = (-np.inf, None)
    for seq in finished + unfinished:
        total = sum(log_probs[last, t] for last, t in zip((BOS,) + seq[:-1], seq))
        best = max(best, (total / len(seq) ** alpha, seq))
    return best


def test_hand_made_model_best_beam_is_known():
    dummy = jnp.zeros((2 * 2, 1))                       # a batch of two identical rows, two beams each
    tokens, scores = beam_search(markov_step, dummy, 2, beam_width=2, max_len=4, bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(tokens[:, 0], [[B, EOS, PAD, PAD]] * 2)
    log_probs = np.asarray(jax.nn.log_softmax(LOGITS))
    np.testing.assert_allclose(scores[:, 0], (log_probs[BOS, B] + log_probs[B, EOS]) / 2, rtol=1e-5)
    greedy, _ = greedy_search(markov_step, jnp.zeros((2, 1)), 2, max_len=4, bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(greedy, [[A, A, A, A]] * 2)   # greedy misses it


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.6])
def test_exhaustive_beam_equals_brute_force(alpha):
    log_probs = np.asarray(jax.nn.log_softmax(LOGITS), np.float64)
    score, seq = brute_force(log_probs, 4, alpha)
    tokens, scores = beam_search(markov_step, jnp.zeros((64, 1)), 1, beam_width=64, max_len=4, bos_id=BOS,
                                 eos_id=EOS, length_penalty=alpha)
    got = [t for t in np.asarray(tokens[0, 0]) if t != PAD]
    assert tuple(got) == seq
    np.testing.assert_allclose(scores[0, 0], score, rtol=1e-5)


def test_tile_beams_repeats_rows_adjacently():
    tree = {"k": jnp.arange(6).reshape(2, 3)}
    np.testing.assert_array_equal(tile_beams(tree, 2)["k"][:, 0], [0, 0, 3, 3])


def test_encoder_decoder_layer_and_errors(model):
    params, source, mask = model
    layer = EncoderDecoder(CFG)
    spec, p, _ = layer.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((3, 7), jnp.int32))
    assert spec.shape == (3, 6, 11)
    target = jnp.full((3, 5), 4)
    np.testing.assert_allclose(layer.apply(params, {}, (source, target, mask))[0],
                               seq2seq_apply(CFG, params, source, target, mask), rtol=1e-6)
    with pytest.raises(ShapeError, match=r"at most 6 target tokens \(\.\.\., L\), got \(3, 8\)"):
        seq2seq_apply(CFG, params, source, jnp.zeros((3, 8), jnp.int32), mask)
