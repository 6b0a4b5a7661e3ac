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
