"""Subprocess on 8 simulated devices: a LoRA-wrapped TransformerLM trained 4 SGD steps on 1 device and on 8
(replicated and fully sharded); a safetensors file (argv[2]) read straight onto a fully sharded layout.
Writes the results as JSON to argv[1]."""
import json
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
import optax  # noqa: E402

from deepcore.finetune import lora  # noqa: E402
from deepcore.models.transformer import TransformerLM  # noqa: E402
from deepcore.train import classifier_loss, init_state, parallel, train_step  # noqa: E402

MODEL = lora.LoRA(TransformerLM(vocab_size=11, d_model=16, num_layers=2, num_heads=2, max_len=8),
                  lora.LoRAConfig(rank=4))
SPEC = jax.ShapeDtypeStruct((8, 8), np.int32)
TX = lora.optimizer(optax.sgd(1.0))


def batch(t):
    x = np.random.default_rng(t).integers(0, 11, (8, 8)).astype(np.int32)
    return {"x": x, "y": np.roll(x, -1, axis=1)}


def run(mode):
    state = init_state(MODEL, SPEC, TX, seed=0)
    kw = {}
    if mode:
        mesh = parallel.make_mesh()
        kw = parallel.step_shardings(state, mesh, mode=mode)
        state = parallel.place_state(state, kw["state_sharding"])
    step = train_step(classifier_loss(MODEL), TX, **kw)
    losses = []
    for t in range(4):
        b = batch(0) if not mode else parallel.shard_batch(batch(0), mesh)   # one batch: the loss must fall
        state, m = step(state, b)
        losses.append(float(m["loss"]))
    shards = len(state.params["lora"]["blocks"]["mlp"]["fc"]["w"]["b"].addressable_shards[0].data.reshape(-1))
    return state.params, np.array(losses), shards


ref, ref_losses, _ = run(None)
out = {}
for mode in ("replicated", "fsdp"):
    params, losses, shard_size = run(mode)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
               zip(jax.tree.leaves(params), jax.tree.leaves(ref)))
    out[mode] = {"param_diff": diff, "loss_diff": float(np.max(np.abs(losses - ref_losses))),
                 "adapter_b_shard_size": shard_size, "loss_drop": float(ref_losses[0] - ref_losses[-1])}
from deepcore.finetune import export  # noqa: E402

like = jax.eval_shape(lambda: ref)
shardings = parallel.state_sharding(like, parallel.make_mesh(), mode="fsdp")
export.save(ref, sys.argv[2])
got = export.load(sys.argv[2], like, shardings)
w = got["base"]["blocks"]["mlp"]["fc"]["w"]
out["sharded_load"] = {
    "exact": all(np.array_equal(np.asarray(a), np.asarray(b))
                 for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref))),
    "same_shardings": all(a.sharding == s for a, s in zip(jax.tree.leaves(got), jax.tree.leaves(shardings))),
    "fc_shard_shape": list(w.addressable_shards[0].data.shape), "fc_shape": list(w.shape)}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
