"""The whole-state non-finite guard: what the step reports is not trusted; nothing non-finite is saved or returned."""
import io
import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.guard import nonfinite_paths
from deepcore.train.loop import fit
from test_loop import MODEL, poisonable_loss, poisoned_batches

pytestmark = pytest.mark.xdist_group("train_test_guard")


def _steps(directory):
    return sorted(int(d.name) for d in (directory / "checkpoints").iterdir() if d.name.isdigit())


def test_nonfinite_paths_names_the_bad_leaves_and_skips_integers():
    tree = {"params": {"w": jnp.ones((3, 3)), "b": jnp.array([0.0, jnp.inf])}, "step": jnp.int32(4),
            "opt": [jnp.array([jnp.nan])]}
    assert nonfinite_paths(tree) == ["opt/0", "params/b"]
    assert nonfinite_paths({"w": jnp.zeros(2), "step": jnp.int32(1)}) == []


def test_nan_gradient_at_a_checkpoint_step_with_grad_norm_off_is_never_saved_nor_returned(tmp_path):
    """The experiment scripts' steps (grad_norm=False): the loss of the step is finite, its gradient is not."""
    tx = optax.sgd(0.1)
    step = train_step(poisonable_loss, tx, grad_norm=False)
    fresh = lambda: init_state(MODEL, C.spec(), tx, seed=0)
    fit(step, fresh(), poisoned_batches(-1, "inf_grad"), steps=10, out_dir=str(tmp_path), checkpoint_every=5,
        keep=10, stream=io.StringIO())
    before = C.hashes(tmp_path, "checkpoints")
    jsonl_before = (tmp_path / "metrics.jsonl").read_text()
    out = io.StringIO()
    # the batch of step index 14 is update 15, a checkpoint step; its loss (before the update) is finite
    r = fit(step, fresh(), poisoned_batches(14, "inf_grad"), steps=20, out_dir=str(tmp_path), checkpoint_every=5,
            keep=10, stream=out)
    assert r.stop_reason == "nonfinite"
    assert "non-finite values in params/" in r.message and "after step 15" in r.message, r.message
    assert "last good checkpoint: step 10" in r.message and r.message in out.getvalue()
    assert _steps(tmp_path) == [5, 10] and C.hashes(tmp_path, "checkpoints") == before
    assert r.step == 10 and np.all(np.isfinite(C.flat(r.state)))
    assert (tmp_path / "metrics.jsonl").read_text().startswith(jsonl_before)
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"event"' in x]
    assert events == [{"step": 15, "event": "nonfinite", "message": r.message}]


def test_nan_learning_rate_is_caught_before_the_checkpoint_and_at_the_end(tmp_path):
    """A NaN learning rate from update 8 on: loss and gradient norm of update 8 are finite, the parameters not."""
    tx = optax.sgd(lambda count: jnp.where(count >= 7, jnp.nan, 0.1))
    step = train_step(classifier_loss(MODEL), tx)
    r = fit(step, init_state(MODEL, C.spec(), tx, seed=0), C.batches, steps=12, out_dir=str(tmp_path),
            checkpoint_every=4, stream=io.StringIO())
    assert r.stop_reason == "nonfinite" and "after step 8" in r.message, r.message
    assert "params/dense_0/w" in r.message and "last good checkpoint: step 4" in r.message
    assert _steps(tmp_path) == [4] and r.step == 4 and np.all(np.isfinite(C.flat(r.state)))

    # no checkpoints: the bad state is not returned either (the NaN appears in the last update)
    tx = optax.sgd(lambda count: jnp.where(count >= 2, jnp.nan, 0.1))
    r = fit(train_step(poisonable_loss, tx, grad_norm=False), init_state(MODEL, C.spec(), tx, seed=0),
            poisoned_batches(-1, "inf_grad"), steps=3, stream=io.StringIO())
    assert r.stop_reason == "nonfinite" and "after step 3" in r.message and "no state returned" in r.message
    assert r.state is None and r.step == 0
