"""predict / evaluate_split over a split whose size is not a multiple of the batch size, against numpy;
flip test-time augmentation."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.train import evaluate_split, flip_averaged, parallel, predict

N, D, K = 37, 5, 3          # 37 rows in batches of 8: four full batches and one of 5 real rows + 3 padding


@pytest.fixture(scope="session")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.integers(0, K, size=N).astype(np.int32)
    w = rng.normal(size=(D, K)).astype(np.float32)
    return x, y, w


def per_example(w, batch):
    logits = batch["x"] @ w
    logp = jax.nn.log_softmax(logits)
    return {"loss": -jnp.take_along_axis(logp, batch["y"][:, None], axis=1)[:, 0],
            "accuracy": jnp.argmax(logits, -1) == batch["y"]}


def numpy_reference(x, y, w):
    logits = x.astype(np.float64) @ w.astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    return {"loss": float(np.mean(-logp[np.arange(len(y)), y])), "accuracy": float(np.mean(logits.argmax(1) == y))}


def test_predict_every_row_once_in_order(problem):
    x, _, w = problem
    out = predict(lambda w, xb: xb @ w, x, 8, args=(w,))
    assert isinstance(out, np.ndarray) and out.shape == (N, K)
    np.testing.assert_allclose(out, x.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    tree = predict(lambda b: {"double": 2 * b["x"], "first": b["x"][:, 0]}, {"x": x}, 10)   # a pytree of outputs
    np.testing.assert_array_equal(tree["double"], 2 * x)
    np.testing.assert_array_equal(tree["first"], x[:, 0])


def test_evaluate_split_is_the_exact_mean_with_padding_weighted_zero(problem):
    x, y, w = problem
    want = numpy_reference(x, y, w)
    for bs in (8, 37, 64):          # a remainder, exactly one batch, one batch mostly padding
        got = evaluate_split(per_example, {"x": x, "y": y}, bs, args=(w,), prefix="val_")
        assert set(got) == {"val_loss", "val_accuracy"}
        assert got["val_accuracy"] == want["accuracy"]                  # a count over 37: exact
        np.testing.assert_allclose(got["val_loss"], want["loss"], rtol=1e-6)


def test_mesh_gives_the_same_values(problem):
    x, y, w = problem
    mesh = parallel.make_mesh(jax.devices()[:1])
    np.testing.assert_allclose(predict(lambda w, xb: xb @ w, x, 8, args=(w,), mesh=mesh), x @ w, rtol=1e-5, atol=1e-5)


def test_two_devices_shard_the_batches(tmp_path):
    code = textwrap.dedent("""
        import jax, numpy as np
        from deepcore.train import evaluate_split, parallel
        x = np.arange(21, dtype=np.float32)
        mesh = parallel.make_mesh(jax.devices()[:2])
        seen, shard = [], parallel.shard_batch
        def spy(batch, mesh):
            out = shard(batch, mesh)
            seen.append((out.shape[0], len(out.sharding.device_set)))
            return out
        parallel.shard_batch = spy
        print(evaluate_split(lambda b: {"v": b * 2}, x, 5, mesh=mesh)["v"], np.mean(2 * x.astype(np.float64)),
              set(seen) == {(6, 2)} and len(seen) == 4)
    """)
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, want, sharded = proc.stdout.split()
    assert float(got) == float(want) and sharded == "True"   # batch 5 rounded up to 6 over two devices: 4 batches


def test_a_batch_mean_is_refused(problem):
    x, y, w = problem
    with pytest.raises(ValueError, match=r"output\['loss'\]: expected one row per example \(leading axis 8, the batch size\), got shape \(\)"):
        evaluate_split(lambda w, b: {"loss": per_example(w, b)["loss"].mean()}, {"x": x, "y": y}, 8, args=(w,))


def test_flip_tta_averages_probabilities_and_ignores_the_mirror():
    k1, k2 = jax.random.split(jax.random.key(0))
    w = jax.random.normal(k1, (6 * 5 * 2, 4))
    logits = lambda x: x.reshape(len(x), -1) @ w            # not flip-invariant by itself
    x = jax.random.normal(k2, (3, 6, 5, 2))
    mirror = x[:, :, ::-1]
    assert not np.allclose(logits(x), logits(mirror), atol=1e-3)
    out = flip_averaged(logits)(x)
    want = jnp.log((jax.nn.softmax(logits(x)) + jax.nn.softmax(logits(mirror))) / 2)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, flip_averaged(logits)(mirror), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.exp(out).sum(-1), 1.0, rtol=1e-5)


def test_classifier_eval_is_the_eval_mode_logits_and_per_example_cross_entropy():
    import optax

    from deepcore import layers as L
    from deepcore.train import classifier_eval, init_state

    model = L.serial(L.Flatten(), L.Dense(8), L.Relu, L.Dense(3))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 4, 4, 1)).astype(np.float32), rng.integers(0, 3, 5)
    state = init_state(model, jax.ShapeDtypeStruct((5, 4, 4, 1), jnp.float32), optax.sgd(0.1), seed=0)
    logits, per_example = classifier_eval(model)
    want = np.asarray(model.apply(state.params, state.model_state, x)[0])
    np.testing.assert_allclose(logits(state, x), want, rtol=1e-6)
    m = per_example(state, {"image": x, "label": y})
    shifted = want - want.max(-1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(-1)) - shifted[np.arange(5), y]
    np.testing.assert_allclose(m["loss"], nll, rtol=1e-5)
    np.testing.assert_array_equal(m["accuracy"], want.argmax(-1) == y)
    mirrored = classifier_eval(model, tta=True)[0](state, x)
    lp = lambda v: jax.nn.log_softmax(model.apply(state.params, state.model_state, v)[0])   # noqa: E731
    np.testing.assert_allclose(mirrored, np.log((np.exp(lp(x)) + np.exp(lp(x[:, :, ::-1]))) / 2), rtol=1e-5, atol=1e-6)
