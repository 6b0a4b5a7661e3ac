"""The loop reports the share of wall time spent waiting for batches (is the input pipeline the bottleneck?)."""
import io
import time

import numpy as np
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


def test_a_wait_that_overlaps_the_running_step_is_not_counted():
    """Steps run asynchronously: a pipeline that takes 50 ms per batch beside a step that computes for longer
    never leaves the device idle, so its wait is not counted; without the step's work it dominates."""
    from typing import NamedTuple

    import jax
    import jax.numpy as jnp

    class State(NamedTuple):
        step: jax.Array
        x: jax.Array

    def make_step(rounds):
        @jax.jit
        def step(state, batch):
            x = state.x
            for _ in range(rounds):   # 69 GFLOP at rounds=32: several times the pipeline's 50 ms on a CPU
                x = jnp.tanh(x @ x / x.shape[0])
            return State(state.step + 1, x), {"loss": jnp.mean(x)}
        return step

    def slow(start):
        for i in range(start, 10_000):
            time.sleep(0.05)
            yield {"i": np.full((4,), i)}

    def fractions(rounds):
        state = State(jnp.zeros((), jnp.int32), jnp.eye(1024, dtype=jnp.float32))
        result = fit(make_step(rounds), state, slow, steps=12, log_every=4, stream=io.StringIO(), tty=False)
        return [r["data_wait_fraction"] for r in result.history if r.get("split") == "train"]

    busy, idle = fractions(32), fractions(0)
    assert max(busy) < 0.3 and min(idle) > 0.5, (busy, idle)
