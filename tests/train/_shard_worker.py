"""Subprocess entry point of test_sharding.py: 8 simulated CPU devices, every layout vs one device.

    python _shard_worker.py OUT.json                     # 8 simulated devices in one process
    python _shard_worker.py process PORT PID OUT.npz     # one of 2 processes x 2 devices: data=2 x tensor=2
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore.models.cnn import VGG
from deepcore.models.transformer import TransformerLM
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train import sharding as S
from deepcore.train.checkpoint import Checkpointer
from deepcore.train.fit_report import abstract_state, memory_report
from deepcore.train.parallel import fetch, initialize, place_state, process_rows

STEPS, B = 10, 8
LAYOUTS = {"data": {"data": 8}, "fsdp": {"fsdp": 8}, "tensor": {"tensor": 8},
           "data_x_tensor": {"data": 2, "tensor": 4}, "fsdp_x_tensor": {"fsdp": 4, "tensor": 2}}
SEQUENCE = {"data": 2, "seq": 4}, "default,length=seq"   # the LM's activations split 4 ways along the sequence


def lm_case():
    model = TransformerLM(vocab_size=32, d_model=32, num_layers=2, num_heads=8, max_len=8)

    def batch(t):
        tokens = np.random.default_rng(100 + t).integers(0, 32, (B, 9)).astype(np.int32)
        return {"x": tokens[:, :-1], "y": tokens[:, 1:]}
    return model, jax.ShapeDtypeStruct((B, 8), jnp.int32), batch, optax.sgd(0.5), ("blocks", "mlp", "fc", "w")


def cnn_case():
    model = VGG(8, stages=((8,), (16,)))

    def batch(t):
        rng = np.random.default_rng(200 + t)
        x = rng.normal(size=(B, 8, 8, 1)).astype(np.float32)
        return {"x": x, "y": (x[:, :4, :4, 0].sum((1, 2)) > 0).astype(np.int32) * 3}
    return model, jax.ShapeDtypeStruct((B, 8, 8, 1), jnp.float32), batch, optax.sgd(0.1), ("stage_1", "conv_0", "w")


def flat(tree):
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in jax.tree.leaves(tree)])


def run(step, state, batch, put):
    losses = []
    for t in range(STEPS):
        state, m = step(state, put(batch(t)))
        losses.append(float(m["loss"]))   # sync every step (simulated-device collectives deadlock otherwise)
    return state, losses


def get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def compare(name, case, out, ckdir):
    model, spec, batch, tx = case[:4]
    lf, template = classifier_loss(model), init_state(model, spec, tx, seed=0)
    ref, ref_losses = run(train_step(lf, tx, donate=False, compiler_options={}),
                          jax.device_put(template, jax.devices()[0]), batch, lambda b: b)
    axes = S.logical_axes(model, spec)
    layouts = {k: (v, "default") for k, v in LAYOUTS.items()}
    for layout, (shape, rules) in dict(layouts, **({"sequence": SEQUENCE} if name == "lm" else {})).items():
        mesh = S.make_mesh(shape)
        kw = S.step_shardings(template, mesh, rules, axes=axes, tx=tx)
        step = train_step(S.with_rules(lf, mesh, rules), tx, donate=False, compiler_options={}, **kw)
        put = lambda b: jax.device_put(b, kw["batch_sharding"])   # noqa: E731
        state, losses = run(step, place_state(template, kw["state_sharding"]), batch, put)
        w = get(state.params, case[4])
        out[f"{name}/{layout}"] = {"param_diff": float(np.max(np.abs(flat(state.params) - flat(ref.params)))),
                                   "loss_diff": float(np.max(np.abs(np.array(losses) - ref_losses))),
                                   "w_spec": str(w.sharding.spec), "w_shards": len({str(s.index) for s in
                                                                                    w.addressable_shards})}
        if layout == "sequence":   # the activation constraints in the program split the length axis
            wrapped = S.with_rules(lf, mesh, rules)
            text = jax.jit(lambda p, b: wrapped(p, template.model_state, b, None, False)[0]).lower(
                template.params, put(batch(0))).as_text()
            lines = [line for line in text.splitlines() if "sharding_constraint" in line]
            out[f"{name}/{layout}"]["constraints"] = [len(lines), sum('{"seq"}' in line for line in lines)]
        if name == "lm" and layout == "data_x_tensor":
            with Checkpointer(ckdir) as ck:
                ck.save(STEPS, state, {"layout": layout})
            restored = {}
            for target, tmesh in (("fsdp", S.make_mesh({"fsdp": 8})), ("one", S.make_mesh({"data": 1},
                                                                                             jax.devices()[:1]))):
                tk = S.state_shardings(template, tmesh, "default", axes=axes, tx=tx)
                with Checkpointer(ckdir) as ck:
                    got, meta = ck.restore(place_state(template, tk))
                restored[target] = {"exact": bool(np.array_equal(flat(got), flat(state))), "meta": meta,
                                    "devices": len(get(got.params, case[4]).sharding.device_set)}
            out["restore"] = restored


def memory(out):
    model, spec, _, tx = lm_case()[:4]
    state, axes, lf = abstract_state(model, spec, tx), S.logical_axes(model, spec), classifier_loss(model)
    for layout, shape, devices in (("one", {"data": 1}, jax.devices()[:1]), ("tensor", {"tensor": 8}, None),
                                   ("fsdp", {"fsdp": 8}, None)):
        out[f"memory/{layout}"] = memory_report(lf, tx, state, {"x": spec, "y": spec},
                                                S.make_mesh(shape, devices), axes=axes)
    out["param_bytes"] = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(state.params))


def main(path):
    assert len(jax.devices()) == 8, jax.devices()
    out = {}
    compare("lm", lm_case(), out, path + ".ckpt")
    compare("cnn", cnn_case(), out, None)
    memory(out)
    with open(path, "w") as f:
        json.dump(out, f)


def process_main(port, pid, out):
    """LM, data=2 x tensor=2 over 2 processes: each feeds its rows of the batch (the mesh's data rows are the
    processes, whose devices are the tensor pair)."""
    initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(pid))
    model, spec, batch, tx = lm_case()[:4]
    lf, template = classifier_loss(model), init_state(model, spec, tx, seed=0)
    mesh = S.make_mesh({"data": 2, "tensor": 2})
    kw = S.step_shardings(template, mesh, "default", axes=S.logical_axes(model, spec), tx=tx)
    step = train_step(S.with_rules(lf, mesh), tx, donate=False, compiler_options={}, **kw)
    state, losses = run(step, place_state(template, kw["state_sharding"]), batch,
                        lambda b: S.shard_batch(process_rows(b), kw["batch_sharding"]))
    if jax.process_index() == 0:
        np.savez(out, flat=flat(fetch(state.params)), losses=np.array(losses), devices=len(jax.devices()),
                 processes=jax.process_count())


def reference():
    """The one-device run the process test compares with: ``(flat params, losses)``."""
    model, spec, batch, tx = lm_case()[:4]
    state, losses = run(train_step(classifier_loss(model), tx, donate=False, compiler_options={}),
                        init_state(model, spec, tx, seed=0), batch, lambda b: b)
    return flat(state.params), np.array(losses)


if __name__ == "__main__":   # importing this module (for reference()) leaves the device count alone
    jax.config.update("jax_num_cpu_devices", 2 if sys.argv[1] == "process" else 8)   # before any JAX operation
    if sys.argv[1] == "process":
        process_main(*sys.argv[2:])
    else:
        main(sys.argv[1])
