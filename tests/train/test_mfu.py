"""Model FLOPs from the compiled cost analysis, MFU arithmetic, peaks and device memory."""
import jax
import jax.numpy as jnp
import pytest

from deepcore.train.mfu import STATED_PEAKS, device_memory, mfu, stated_peak, step_flops, with_flops


def test_step_flops_counts_a_matmul_and_with_flops_attaches_it():
    f = jax.jit(lambda a, b: a @ b)
    a = jnp.ones((16, 32)), jnp.ones((32, 8))
    assert step_flops(f, *a) == pytest.approx(2 * 16 * 32 * 8, rel=0.05)
    g = with_flops(f, *a, peak_gflops=100.0)
    assert g.flops_per_step == step_flops(f, *a) and g.peak_flops == 1e11
    assert (g(*a) == f(*a)).all()
    with pytest.raises(TypeError, match="with .lower"):
        step_flops(lambda x: x, 1.0)


def test_mfu_is_achieved_over_peak_and_peaks_are_known_for_listed_devices():
    assert mfu(1e12, 0.5, 4e12) == pytest.approx(0.5)
    assert STATED_PEAKS["H200"]["bfloat16"] > STATED_PEAKS["A100"]["bfloat16"]
    if jax.default_backend() == "cpu":
        assert stated_peak("bfloat16") is None and device_memory() is None


def test_fit_logs_tflops_and_mfu_of_a_step_that_carries_its_flops(tmp_path):
    import json
    import sys

    import optax
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import _common as C
    from deepcore.train import classifier_loss, init_state, train_step
    from deepcore.train.loop import fit

    tx = optax.sgd(0.1)
    state = init_state(C.model(), C.spec(), tx, seed=0)
    step = with_flops(train_step(classifier_loss(C.model()), tx), state, C.batch_at(0), peak_gflops=1.0)
    assert step.flops_per_step > 2 * C.BATCH * C.IN * C.HIDDEN  # at least the first layer's forward matmul
    fit(step, state, C.batches, steps=4, log_every=2, out_dir=str(tmp_path), stream=None)
    recs = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    train = [r for r in recs if r["split"] == "train"]
    assert train and all(r["tflops_per_s"] > 0 and r["mfu"] == pytest.approx(r["tflops_per_s"] * 1e12 / 1e9)
                         for r in train if "tflops_per_s" in r)
    assert any("mfu" in r for r in train)
