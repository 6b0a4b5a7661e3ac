"""The loop reports the share of wall time spent waiting for batches (is the input pipeline the bottleneck?)."""
import io
import time

import optax

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.loop import fit


def _run(batches):
    tx = optax.sgd(0.1)
    state = init_state(C.model(), C.spec(), tx, seed=0)
    result = fit(train_step(classifier_loss(C.model()), tx), state, batches, steps=12, log_every=4,
                 stream=io.StringIO(), tty=False)
    return [r["data_wait_fraction"] for r in result.history if r.get("split") == "train"]


def test_fast_and_slow_pipelines_are_told_apart():
    def slow(start):
        for b in C.batches(start):
            time.sleep(0.05)  # a pipeline far slower than this tiny model's step
            yield b

    fast, slow_fracs = _run(C.batches), _run(slow)
    assert len(fast) == len(slow_fracs) == 3
    assert all(0.0 <= f <= 1.0 for f in fast + slow_fracs)
    assert min(slow_fracs) > 0.5, slow_fracs     # waiting dominates
    assert max(fast) < min(slow_fracs), (fast, slow_fracs)
