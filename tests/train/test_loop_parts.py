"""The named parts of the training loop: EarlyStopping.update, Every, StepGuard, ProfileWindow, and a smoke fit
that mirrors its records to TensorBoard and traces a window of steps."""
import glob
import importlib.util
import io
import itertools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.early_stopping import EarlyStopping
from deepcore.train.guard import StepGuard
from deepcore.train.loop import fit
from deepcore.train.periodic import Every
from deepcore.train.profiler import ProfileWindow
from test_metrics_log import _accumulated

pytestmark = pytest.mark.xdist_group("train_test_loop_parts")


def test_early_stopping_update_counts_evaluations_without_improvement():
    es = EarlyStopping("val_loss", patience=2, min_delta=0.1)
    seen = []
    for v in (1.0, 0.95, 0.8, 0.85, 0.75):   # 0.95 and 0.75 are within min_delta of the best: no improvement
        es = es.update({"val_loss": v})
        seen.append((es.best, es.bad_evals, es.stop))
    assert seen == [(1.0, 0, False), (1.0, 1, False), (0.8, 0, False), (0.8, 1, False), (0.8, 2, True)]
    assert "has not improved on 0.8 for 2 evaluations" in es.message(50)
    assert es.counters() == {"best": 0.8, "bad_evals": 2}
    up = EarlyStopping("val_accuracy", mode="max", patience=1).update({"val_accuracy": 0.5})
    assert up.update({"val_accuracy": 0.6}).best == 0.6 and up.update({"val_accuracy": 0.4}).stop
    with pytest.raises(KeyError, match="'val_loss' not among eval metrics"):
        EarlyStopping().update({"val_acc": 1.0})
    with pytest.raises(ValueError, match="expected 'min' or 'max', got 'down'"):
        EarlyStopping(mode="down").update({"val_loss": 1.0})


def test_every_fires_on_multiples_and_at_the_last_step():
    assert [s for s in range(1, 12) if Every(4, last=11)(s)] == [4, 8, 11]
    assert [s for s in range(1, 12) if Every(4)(s)] == [4, 8]
    assert not any(Every(None, last=11)(s) for s in range(1, 12))


def test_step_guard_reads_one_step_late_and_names_the_step():
    read = []
    g = StepGuard(on_read=read.append)
    state = {"w": jnp.ones(2)}
    assert g.after_step(1, {"loss": jnp.float32(0.5)}, state, read=False, whole=False) is None
    assert read == []                                   # step 1 is still pending
    bad = g.after_step(2, {"loss": jnp.float32(np.nan)}, state, read=False, whole=False)
    assert bad is None and read == [{"loss": 0.5}]      # step 1 read now; step 2 pending
    assert g.read() == "non-finite loss (loss=nan) at step 2"
    bad = g.after_step(3, {"loss": jnp.float32(1.0)}, {"w": jnp.array([1.0, jnp.inf])}, read=True, whole=True)
    assert bad == "non-finite values in w after step 3"


def test_profile_window_validates_its_steps(tmp_path):
    with pytest.raises(ValueError, match=r"1 <= first <= last, got \(5, 2\)"):
        ProfileWindow(str(tmp_path), (5, 2))
    with pytest.raises(ValueError, match="needs an output directory"):
        ProfileWindow(None, (1, 2))


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="tensorboardX not installed")
def test_fit_mirrors_metrics_jsonl_to_tensorboard_and_traces_the_profile_window(tmp_path):
    pytest.importorskip("tensorboard")
    tx = optax.sgd(0.1)
    val = [C.batch_at(10_000)]
    from deepcore.train import eval_step
    r = fit(train_step(classifier_loss(C.model()), tx), init_state(C.model(), C.spec(), tx, seed=0), C.batches,
            steps=8, log_every=2, eval_step=eval_step(classifier_loss(C.model())), eval_batches=lambda: val,
            eval_every=4, out_dir=str(tmp_path), tensorboard=True, profile_steps=(3, 4), stream=io.StringIO())
    assert r.stop_reason == "done" and r.step == 8
    tb = _accumulated(tmp_path / "tb")
    for key in ("loss", "accuracy", "grad_norm", "data_wait_fraction", "val_loss", "val_accuracy"):
        want = [(rec["step"], rec[key]) for rec in r.history if key in rec]
        assert [s for s, _ in tb[key]] == [s for s, _ in want] and len(want) >= 2, key
        np.testing.assert_allclose([v for _, v in tb[key]], [v for _, v in want], rtol=1e-6)  # float32 in events
    traces = glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert len(traces) == 1 and glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "perfetto_trace.json.gz"))


def test_fit_profile_window_past_the_data_is_closed_cleanly(tmp_path):
    tx = optax.sgd(0.1)
    r = fit(train_step(classifier_loss(C.model()), tx), init_state(C.model(), C.spec(), tx, seed=0),
            lambda s: itertools.islice(C.batches(s), 3), steps=None, out_dir=str(tmp_path), profile_steps=(2, 10),
            stream=io.StringIO())
    assert r.stop_reason == "data_exhausted" and r.step == 3
    assert len(glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))) == 1
