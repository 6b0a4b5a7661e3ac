"""The training loop: progress output, metrics.jsonl, evaluation, early stopping, the NaN/Inf guard, resume."""
import io
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, eval_step, init_state, train_step
from deepcore.train.loop import EarlyStopping, fit

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("train_test_loop")

MODEL = C.model()
LOSS = classifier_loss(MODEL)


@jax.custom_vjp
def _scale_grad(x, s):
    return x


_scale_grad.defvjp(lambda x, s: (x, s), lambda s, g: (g * s, jnp.zeros_like(s)))


def poisonable_loss(params, model_state, batch, key, train):
    """The classifier loss; ``batch["nan_loss"]`` makes the loss NaN, ``batch["inf_grad"]`` only the gradient."""
    logits, ms = MODEL.apply(params, model_state, batch["x"], key=key, train=train)
    logits = _scale_grad(logits, jnp.where(batch["inf_grad"].any(), jnp.inf, 1.0))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    loss = jnp.where(batch["nan_loss"].any(), jnp.nan, loss)
    return loss, (ms, {"loss": loss})


def poisoned_batches(at_step, which):
    def batches(start):
        for t, b in enumerate(C.batches(start), start):
            flags = {"nan_loss": np.zeros(C.BATCH, bool), "inf_grad": np.zeros(C.BATCH, bool)}
            if t == at_step:
                flags[which][:] = True
            yield dict(b, **flags)
    return batches


@pytest.fixture(scope="session")
def adam_step():
    return train_step(LOSS, optax.adam(1e-2))


@pytest.fixture(scope="session")
def poison_step():
    return train_step(poisonable_loss, optax.sgd(0.1))


def test_plain_log_lines_jsonl_and_periodic_eval(tmp_path, adam_step):
    out = io.StringIO()
    val = [C.batch_at(10_000 + i) for i in range(2)]
    r = fit(adam_step, init_state(MODEL, C.spec(), optax.adam(1e-2), seed=0), C.batches, steps=12,
            eval_step=eval_step(LOSS), eval_batches=lambda: val, eval_every=6, log_every=4, out_dir=str(tmp_path),
            stream=out)
    assert r.stop_reason == "done" and r.step == 12
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # not a terminal: plain lines
    assert [ln.split()[1] for ln in lines if ln.startswith("step")] == ["4/12", "8/12", "12/12"]
    assert all("ex/s" in ln and "ETA" in ln for ln in lines if ln.startswith("step 8"))
    assert sum(ln.startswith("eval at step") for ln in lines) == 2
    with open(tmp_path / "metrics.jsonl") as f:
        recs = [json.loads(x) for x in f]
    assert [(x["step"], x["split"]) for x in recs] == [(4, "train"), (6, "val"), (8, "train"), (12, "train"),
                                                        (12, "val")]
    assert {"val_loss", "val_accuracy"} <= set(recs[1])
    assert recs == r.history


def test_terminal_gets_a_redrawn_bar(adam_step):
    out = io.StringIO()
    fit(adam_step, init_state(MODEL, C.spec(), optax.adam(1e-2), seed=0), C.batches, steps=3, stream=out, tty=True)
    text = out.getvalue()
    assert "\r[" in text and "step 3/3" in text and "ETA" in text and "ex/s" in text


def test_early_stopping_on_validation_metric(tmp_path):
    tx = optax.sgd(0.0)  # nothing improves
    val = [C.batch_at(10_000)]
    r = fit(train_step(LOSS, tx), init_state(MODEL, C.spec(), tx, seed=0), C.batches, steps=100,
            eval_step=eval_step(LOSS), eval_batches=lambda: val, eval_every=2, out_dir=str(tmp_path),
            checkpoint_every=50, early_stopping=EarlyStopping("val_loss", patience=2), stream=io.StringIO())
    assert r.stop_reason == "early_stop" and r.step == 6
    assert "val_loss" in r.message and "step 6" in r.message
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["6"]


@pytest.mark.parametrize("which, quantity", [("nan_loss", "loss"), ("inf_grad", "gradients")])
def test_nonfinite_stops_with_step_and_quantity_and_keeps_last_good_checkpoint(tmp_path, poison_step, which,
                                                                                quantity):
    tx = optax.sgd(0.1)
    out = io.StringIO()
    r = fit(poison_step, init_state(MODEL, C.spec(), tx, seed=0), poisoned_batches(7, which), steps=20,
            out_dir=str(tmp_path), checkpoint_every=5, stream=out)
    assert r.stop_reason == "nonfinite"
    # the batch of step index 7 is the 8th update
    assert f"non-finite {quantity}" in r.message and "at step 8" in r.message, r.message
    assert "last good checkpoint: step 5" in r.message and r.message in out.getvalue()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["5"]
    assert r.step == 5 and np.all(np.isfinite(C.flat(r.state.params)))


def test_resume_in_process_continues_the_exact_trajectory(tmp_path, adam_step):
    tx = optax.adam(1e-2)
    fresh = lambda: init_state(MODEL, C.spec(), tx, seed=0)
    full = fit(adam_step, fresh(), C.batches, steps=10, stream=io.StringIO())
    first = fit(adam_step, fresh(), C.batches, steps=6, out_dir=str(tmp_path), checkpoint_every=3,
                stream=io.StringIO())
    assert first.step == 6
    second = fit(adam_step, fresh(), C.batches, steps=10, out_dir=str(tmp_path), checkpoint_every=3,
                 stream=io.StringIO())
    assert second.step == 10
    np.testing.assert_array_equal(C.flat(second.state), C.flat(full.state))


def test_bad_arguments_and_existing_checkpoints_without_resume_are_clear_errors(tmp_path, adam_step):
    tx = optax.adam(1e-2)
    fresh = lambda: init_state(MODEL, C.spec(), tx, seed=0)
    with pytest.raises(ValueError, match="eval_every needs eval_step"):
        fit(adam_step, fresh(), C.batches, steps=2, eval_every=1)
    with pytest.raises(ValueError, match="log_every"):
        fit(adam_step, fresh(), C.batches, steps=2, log_every=0)
    fit(adam_step, fresh(), C.batches, steps=2, out_dir=str(tmp_path), checkpoint_every=2, stream=io.StringIO())
    with pytest.raises(FileExistsError, match="newest: step 2"):
        fit(adam_step, fresh(), C.batches, steps=4, out_dir=str(tmp_path), checkpoint_every=2, resume=False)


def test_resuming_into_another_model_names_the_differing_arrays(tmp_path, adam_step):
    from deepcore.layers import Dense, Relu, serial
    from deepcore.train.checkpoint import CheckpointMismatch

    tx = optax.adam(1e-2)
    fit(adam_step, init_state(MODEL, C.spec(), tx, seed=0), C.batches, steps=2, out_dir=str(tmp_path),
        checkpoint_every=2, stream=io.StringIO())
    wider = init_state(serial(Dense(C.HIDDEN + 1), Relu, Dense(C.HIDDEN), Relu, Dense(C.CLASSES)), C.spec(), tx, 0)
    with pytest.raises(CheckpointMismatch, match=r"step 2 .*params/dense_0/b: saved \(16,\) float32, expected "
                                                 r"\(17,\) float32; params/dense_0/w: .*; \.\.\. and \d+ more"):
        fit(adam_step, wider, C.batches, steps=4, out_dir=str(tmp_path), checkpoint_every=2, stream=io.StringIO())
    shallower = init_state(serial(Dense(C.HIDDEN), Relu, Dense(C.CLASSES)), C.spec(), tx, 0)
    with pytest.raises(CheckpointMismatch, match="params/dense_1/w: saved .*expected"):
        fit(adam_step, shallower, C.batches, steps=4, out_dir=str(tmp_path), checkpoint_every=2, stream=io.StringIO())


def test_unbounded_steps_under_a_time_budget(tmp_path, adam_step):
    import itertools

    fresh = lambda: init_state(MODEL, C.spec(), optax.adam(1e-2), seed=0)
    clock = {"left": 100.0}

    def budgeted(start):   # a time budget's batches: they stop when the time is spent (here after 6 steps)
        for b in itertools.islice(C.batches(start), 6):
            clock["left"] -= 10.0
            yield b
        clock["left"] = -1.0

    out = io.StringIO()
    r = fit(adam_step, fresh(), budgeted, steps=None, log_every=3, out_dir=str(tmp_path), checkpoint_every=3,
            stream=out, time_left=lambda: clock["left"])
    assert r.stop_reason == "time_budget" and r.step == 6 and "time budget spent at step 6" in r.message
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("step")]
    assert lines[0].startswith("step 3 ") and "ETA 0:01:10" in lines[0]   # no step total; the ETA is the time left
    bar = io.StringIO()
    fit(adam_step, fresh(), lambda s: itertools.islice(C.batches(s), 4), steps=None, stream=bar, tty=True)
    assert not re.search(r"\[[#.]{20}\]", bar.getvalue()) and "\rstep 4 " in bar.getvalue()  # no bar: no total
    plain = fit(adam_step, fresh(), lambda s: itertools.islice(C.batches(s), 2), steps=None, stream=io.StringIO())
    assert plain.stop_reason == "data_exhausted" and plain.step == 2
