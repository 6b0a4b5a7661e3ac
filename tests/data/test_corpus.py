"""deepcore.data.corpus: the exact validation figure of the character language models."""
import math

import numpy as np
import pytest

from deepcore.data import eval_windows, window_nll
from deepcore.models.bigram import bigram_baseline, bigram_nats, fit_bigram


def test_eval_windows_give_the_exact_mean_over_every_character():
    """The LM evaluation (windows, padding, weights, batches) run on a bigram 'model' equals bigram_nats."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 7, 500), rng.integers(0, 7, 103)   # 102 targets: windows of 8, batches of 4
    lp = fit_bigram(train, 7, k=0.5)
    batches = eval_windows(val, seq_len=8, batch_size=4)
    assert len(batches) == 4 and batches[0]["inputs"].shape == (4, 8)      # 13 windows -> 4 batches, 3 padded rows
    sums = [window_nll(jnp.asarray(lp[b["inputs"]], jnp.float32), jnp.asarray(b["targets"]),
                                   jnp.asarray(b["weight"])) for b in batches]
    nats = float(np.mean([float(m["loss"]) for m in sums]))
    assert nats == pytest.approx(bigram_nats(lp, val), rel=1e-5)
    assert float(np.mean([float(m["bits_per_char"]) for m in sums])) == pytest.approx(nats / math.log(2), rel=1e-6)


def test_bigram_baseline_is_fit_on_train_and_scored_on_val():
    rng = np.random.default_rng(1)
    train, val = rng.integers(0, 5, 300), rng.integers(0, 5, 40)
    b = bigram_baseline(train, val, 5, k=0.5)
    assert b["bigram_val_nats_per_char"] == pytest.approx(bigram_nats(fit_bigram(train, 5, 0.5), val), rel=1e-12)
    assert b["bigram_val_bits_per_char"] == pytest.approx(b["bigram_val_nats_per_char"] / math.log(2), rel=1e-12)
