"""LoRA: adapters on chosen projections, only they train (no optimiser state for the base), merge/unmerge,
gradients, checkpoints, populations and sharded layouts."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore.finetune import lora
from deepcore.layers import Dense
from deepcore.models.transformer import TransformerLM
from deepcore.train import Checkpointer, classifier_loss, init_state, train_step
from deepcore.train.population import init_population, member, population_step
from deepcore.tree import flatten_dict, param_count

LM = dict(vocab_size=11, d_model=16, num_layers=2, num_heads=2, max_len=8)
SPEC = jax.ShapeDtypeStruct((4, 8), jnp.int32)


def batch(t, n=4):
    x = np.random.default_rng(t).integers(0, 11, (n, 8)).astype(np.int32)
    return {"x": x, "y": np.roll(x, -1, axis=1)}


def randomised(tree, seed=1):
    """Adapters with non-zero ``b`` (as after training), so merge has something to add."""
    leaves, treedef = jax.tree.flatten(tree["lora"])
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    lo = jax.tree.unflatten(treedef, [jax.random.normal(k, a.shape, a.dtype) * 0.1 for k, a in zip(keys, leaves)])
    return {"base": tree["base"], "lora": lo}


@pytest.mark.parametrize("scan", [True, False])
def test_adapters_sit_on_every_block_projection_and_start_as_the_base_model(scan):
    base = TransformerLM(**LM, scan=scan)
    model = lora.LoRA(base, lora.LoRAConfig(rank=4))
    _, tree, _ = model.init(jax.random.PRNGKey(0), SPEC)
    flat = flatten_dict(tree["lora"])
    prefix = "blocks/" if scan else "blocks/1/"
    assert flat[prefix + "attn/qkv/w/a"].shape == ((2,) if scan else ()) + (16, 4)
    assert flat[prefix + "mlp/fc/w/b"].shape == ((2,) if scan else ()) + (4, 64)
    assert len(flat) == 2 * 4 * (1 if scan else 2)                      # a, b on 4 projections (per layer)
    x = batch(0)["x"]
    np.testing.assert_array_equal(model.apply(tree, {}, x)[0], base.apply(tree["base"], {}, x)[0])


def test_merged_and_unmerged_adapters_give_the_same_outputs():
    cfg = lora.LoRAConfig(rank=4, scale=2.0)
    base = TransformerLM(**LM)
    model = lora.LoRA(base, cfg)
    tree = randomised(model.init(jax.random.PRNGKey(0), SPEC)[1])
    x = batch(0)["x"]
    y = model.apply(tree, {}, x)[0]
    merged = lora.merge(tree, cfg)
    np.testing.assert_allclose(base.apply(merged, {}, x)[0], y, atol=2e-6)
    assert float(jnp.max(jnp.abs(base.apply(tree["base"], {}, x)[0] - y))) > 1e-2   # the adapters matter
    back = lora.unmerge(merged, tree["lora"], cfg)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with jax.enable_x64(True):   # the merged weight is w + scale * a @ b, computed independently in numpy
        w = np.asarray(tree["base"]["blocks"]["mlp"]["fc"]["w"], np.float64)
        ab = tree["lora"]["blocks"]["mlp"]["fc"]["w"]
        want = w + 2.0 * np.einsum("lir,lro->lio", np.asarray(ab["a"], np.float64), np.asarray(ab["b"], np.float64))
        np.testing.assert_allclose(merged["blocks"]["mlp"]["fc"]["w"], want, atol=1e-6)


def test_only_adapters_train_and_the_frozen_weights_take_no_optimiser_memory():
    model = lora.LoRA(TransformerLM(**LM), lora.LoRAConfig(rank=4))
    tx = lora.optimizer(optax.adam(1e-2))
    state = init_state(model, SPEC, tx, seed=0)
    n_lora = param_count(state.params["lora"])
    moments = [a for a in jax.tree.leaves(state.opt_state) if jnp.ndim(a) > 0]
    assert sum(a.size for a in moments) == 2 * n_lora                    # adam's mu and nu, adapters only
    assert lora.trainable_fraction(state.params) == n_lora / param_count(state.params["base"])
    base0 = jax.tree.map(np.asarray, state.params["base"])
    lora0 = jax.tree.map(np.asarray, state.params["lora"])
    step = train_step(classifier_loss(model), tx)
    losses = []
    for t in range(8):
        state, m = step(state, batch(0))
        losses.append(float(m["loss"]))
    assert losses[-1] < losses[0] - 0.05
    for a, b in zip(jax.tree.leaves(state.params["base"]), jax.tree.leaves(base0)):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params["lora"]), jax.tree.leaves(lora0))]
    assert all(changed)


def test_a_pattern_that_matches_no_weight_is_named():
    with pytest.raises(ValueError, match=r"\['\*mlp/fcx/w'\] match no weight"):
        lora.LoRA(TransformerLM(**LM), lora.LoRAConfig(patterns=("*attn/qkv/w", "*mlp/fcx/w"))).init(
            jax.random.PRNGKey(0), SPEC)


def test_dropout_drops_adapter_inputs_in_train_mode_only():
    cfg = lora.LoRAConfig(rank=4, dropout=0.5)
    model = lora.LoRA(TransformerLM(**LM), cfg)
    tree = randomised(model.init(jax.random.PRNGKey(0), SPEC)[1])
    x, k = batch(0)["x"], jax.random.PRNGKey(3)
    ev = model.apply(tree, {}, x)[0]
    np.testing.assert_array_equal(model.apply(tree, {}, x, key=k, train=False)[0], ev)
    tr1, tr2 = (model.apply(tree, {}, x, key=kk, train=True)[0] for kk in (k, jax.random.PRNGKey(4)))
    assert float(jnp.max(jnp.abs(tr1 - ev))) > 1e-3 and float(jnp.max(jnp.abs(tr1 - tr2))) > 1e-3
    merged = lora.merge(tree, cfg, key=jax.random.PRNGKey(5), train=True)
    a = tree["lora"]["blocks"]["attn"]["qkv"]["w"]["a"]
    dropped = merged["blocks"]["attn"]["qkv"]["w"] - tree["base"]["blocks"]["attn"]["qkv"]["w"]
    rows_zero = np.all(np.asarray(dropped) == 0, axis=-1)                # whole input rows dropped
    assert 0.2 < rows_zero.mean() < 0.8 and a.shape[:-1] == rows_zero.shape


def test_gradient_checker_passes_on_a_lora_wrapped_dense_layer():
    from deepcore.gradcheck import check_layer

    model = lora.LoRA(Dense(5), lora.LoRAConfig(patterns=("w",), rank=3, scale=0.7))
    with jax.enable_x64(True):
        tree = randomised(model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((4, 6), jnp.float64))[1])
        report = check_layer(model, (4, 6), params=tree, state={}, train=(False,))
    assert report.ok, report
    assert {"params/lora/w/a", "params/lora/w/b", "params/base/w"} <= {r.path for r in report.results}


def test_checkpoint_round_trip_of_a_lora_state(tmp_path):
    model = lora.LoRA(TransformerLM(**LM), lora.LoRAConfig(rank=4))
    tx = lora.optimizer(optax.adam(1e-2))
    state = init_state(model, SPEC, tx, seed=0)
    state, _ = train_step(classifier_loss(model), tx, donate=False)(state, batch(0))
    ck = Checkpointer(str(tmp_path / "ck"), async_save=False)
    ck.save(1, state)
    got = ck.restore(init_state(model, SPEC, tx, seed=9))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)


def test_a_population_of_lora_models_equals_separate_runs():
    from deepcore.layers import Relu, serial

    model = lora.LoRA(serial(Dense(16), Relu, Dense(3)), lora.LoRAConfig(patterns=("*/w",), rank=2))
    spec = jax.ShapeDtypeStruct((8, 6), jnp.float32)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(8, 6)).astype(np.float32), "y": rng.integers(0, 3, 8).astype(np.int32)}
    tx = lora.optimizer(optax.sgd(0.3))
    loss = classifier_loss(model)
    pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=[0, 1])
    step = population_step(loss, tx)
    for t in range(3):
        pop, _ = step(pop, data)
    single = train_step(loss, tx)
    for i in range(2):
        s = init_state(model, spec, tx, seed=i)
        for t in range(3):
            s, _ = single(s, data)
        for a, b in zip(jax.tree.leaves(member(pop, i).params), jax.tree.leaves(s.params)):
            np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.mark.xdist_group("finetune_eight_devices")   # one worker runs the 8-device subprocess once
def test_sharded_lora_training_on_eight_devices_matches_one_device(eight_devices):
    r = eight_devices
    for mode in ("replicated", "fsdp"):
        assert r[mode]["param_diff"] < 1e-5 and r[mode]["loss_diff"] < 1e-5, r
        assert r[mode]["loss_drop"] > 0.01, r
    assert r["replicated"]["adapter_b_shard_size"] == 2 * 4 * 64      # whole (L, r, 4D) adapter on every device
    assert r["fsdp"]["adapter_b_shard_size"] == 2 * 4 * 64 // 8       # split 8 ways
