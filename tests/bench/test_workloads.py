"""The benchmark's implementations compute the same thing: deepcore and the hand-written JAX step give the
same losses from the same parameters (W1, W3), and every implementation's step runs on tiny shapes
(Equinox, Flax NNX and PyTorch ones skip when those packages are not installed)."""
import importlib
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.workloads import GFLOP, TINY, inputs, transformer_gflop  # noqa: E402
from bench.workloads import deepcore_impl, pure_jax  # noqa: E402


@pytest.fixture(autouse=True)
def _peers_promote_implicitly():
    """The hand-written and peer-library steps (and optax inside them) are not deepcore's code: they run under
    JAX's default dtype promotion rather than the suite's strict one (tests/conftest.py)."""
    with jax.numpy_dtype_promotion("standard"):
        yield


def two_losses(module, workload, **kw):
    step, state, batch = module.build(workload, TINY[workload], **kw)
    state, first = step(state, batch)
    state, second = step(state, batch)
    return module.sync(first), module.sync(second)


def deepcore_params(workload):
    return jax.tree.map(np.array, deepcore_impl.build(workload, TINY[workload])[1].params)


def test_w1_same_losses_as_hand_written():
    p = deepcore_params("W1")
    theirs = two_losses(pure_jax, "W1", params=[p["dense_0"], p["dense_1"], p["dense_2"]])
    ours = two_losses(deepcore_impl, "W1")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert theirs[1] < theirs[0]  # the Adam update was applied


def test_w3_same_losses_as_hand_written():
    p = deepcore_params("W3")
    theirs = two_losses(pure_jax, "W3", params={"embed": p["embedding"]["w"], "lstm": p["lstm"], "out": p["dense"]})
    ours = two_losses(deepcore_impl, "W3")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert theirs[1] < theirs[0]


def test_inputs_fixed_and_gflop_table():
    a, b = inputs("W4", TINY["W4"]), inputs("W4", TINY["W4"])
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["x"][:, 1:], a["y"][:, :-1])  # next-token targets
    from bench.workloads import CONFIGS
    assert math.isclose(transformer_gflop(CONFIGS["W4"]), GFLOP["W4"], rel_tol=2e-3)  # the table's 84.4


OTHERS = [("flax_linen", "flax.linen"), ("flax_nnx", "flax.nnx"), ("equinox_impl", "equinox"), ("torch_impl", "torch")]


@pytest.mark.parametrize("impl,needs", OTHERS)
def test_other_implementations_train(impl, needs):
    pytest.importorskip(needs)
    module = importlib.import_module(f"bench.workloads.{impl}")
    for w in ("W1", "W5"):  # a classifier and the GAN; the plumbing run of bench/run.py covers the rest
        first, second = two_losses(module, w)
        assert np.isfinite([first, second]).all(), (impl, w)
        if w != "W5":  # a classifier at chance level: log(classes)-ish, and one Adam step lowers it
            assert second < first, (impl, w, first, second)


def test_unrolled_transformer_same_losses_as_scanned():
    from bench.workloads import deepcore_unrolled
    np.testing.assert_allclose(two_losses(deepcore_unrolled, "W4"), two_losses(deepcore_impl, "W4"), rtol=1e-5)
