"""Subprocess entry points for the multi-device, multi-process and SIGKILL tests.

    python _worker.py devices OUT.json                  # 8 simulated devices: 1 vs data-parallel vs fsdp
    python _worker.py process PORT NPROC PID OUT.npz   # one process of a multi-process run
    python _worker.py resume DIR STEPS KILL_STEP KILL_SAVE OUT.npz   # train/resume with checkpoints
"""
import json
import os
import signal
import sys

mode = sys.argv[1]
if mode == "devices":
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import _common as C  # noqa: E402
from deepcore.train import classifier_loss, init_state, train_step  # noqa: E402
from deepcore.train import parallel  # noqa: E402

STEPS = 6
LR = 0.5


def devices_main(out):
    assert len(jax.devices()) == 8, jax.devices()
    tx = optax.sgd(LR)
    lf = classifier_loss(C.model())
    template = init_state(C.model(), C.spec(), tx, seed=0)
    batch_size = 32

    def run(step, state, put):
        losses = []
        for t in range(STEPS):
            state, m = step(state, put(C.batch_at(t, batch_size)))
            losses.append(float(m["loss"]))  # sync every step (simulated-device collectives deadlock otherwise)
        return state, losses

    one = jax.device_put(template, jax.devices()[0])
    ref, ref_losses = run(train_step(lf, tx, donate=False), one, lambda b: b)
    mesh = parallel.make_mesh()
    result = {"ref_losses": ref_losses}
    from deepcore.train.checkpoint import Checkpointer
    for name, mode, extra in (("replicated", "replicated", {}), ("fsdp", "fsdp", {}),
                              ("fsdp_accum", "fsdp", {"accum_steps": 2})):
        kw = parallel.step_shardings(template, mesh, mode)
        state = parallel.place_state(template, kw["state_sharding"])
        step = train_step(lf, tx, **kw, **extra)
        state, losses = run(step, state, lambda b: parallel.shard_batch(b, mesh))
        w = state.params["dense_0"]["w"]
        result[name] = {
            "max_param_diff": float(np.max(np.abs(C.flat(state.params) - C.flat(ref.params)))),
            "max_loss_diff": float(np.max(np.abs(np.array(losses) - ref_losses))),
            "w_shards": len({str(s.index) for s in w.addressable_shards}),
            "step": int(state.step),
        }
        if name == "fsdp":  # save from 8 devices, restore onto 1 and onto 4
            ckdir = out + ".ckpt"
            with Checkpointer(ckdir) as ck:
                ck.save(int(state.step), state, {"mode": mode})
            restored = {}
            for n in (1, 4):
                m = parallel.make_mesh(jax.devices()[:n])
                target = parallel.place_state(template, parallel.state_sharding(template, m, "fsdp"))
                with Checkpointer(ckdir) as ck:
                    got, meta = ck.restore(target)
                restored[n] = {
                    "exact": bool(np.array_equal(C.flat(got), C.flat(state))),
                    "devices": len(got.params["dense_0"]["w"].sharding.device_set),
                    "meta": meta,
                }
            result["restore"] = restored
    with open(out, "w") as f:
        json.dump(result, f)


def process_main(port, nproc, pid, out):
    parallel.initialize(f"127.0.0.1:{port}", num_processes=int(nproc), process_id=int(pid))
    from deepcore.train.loop import fit
    tx = optax.sgd(LR)
    lf = classifier_loss(C.model())
    template = init_state(C.model(), C.spec(), tx, seed=0)
    mesh = parallel.make_mesh()
    kw = parallel.step_shardings(template, mesh, "fsdp")
    state = parallel.place_state(template, kw["state_sharding"])
    result = fit(train_step(lf, tx, **kw), state, lambda s: C.batches(s, rows=parallel.process_rows),
                 steps=STEPS, log_every=1, put_batch=lambda b: parallel.shard_batch(b, mesh))
    params = parallel.fetch(result.state.params)
    if jax.process_index() == 0:
        np.savez(out, flat=C.flat(params), devices=len(jax.devices()), processes=jax.process_count(),
                 losses=np.array([r["loss"] for r in result.history]))


def resume_main(directory, steps, kill_step, kill_save, out):
    kill_step, kill_save = int(kill_step), int(kill_save)
    if kill_save >= 0:  # die after the checkpoint's files are written, before orbax commits (renames) it
        from orbax.checkpoint._src.path import atomicity
        original = atomicity.AtomicRenameTemporaryPath.finalize

        async def finalize(self):
            if str(self._final_path).rstrip("/").endswith(f"/{kill_save}"):
                os.kill(os.getpid(), signal.SIGKILL)
            return await original(self)

        atomicity.AtomicRenameTemporaryPath.finalize = finalize

    def batches(start):
        for t, b in enumerate(C.batches(start), start):
            if t == kill_step:
                os.kill(os.getpid(), signal.SIGKILL)  # a real SIGKILL in the middle of training
            yield b

    from deepcore.train.loop import fit
    tx = optax.adam(0.05)
    lf = classifier_loss(C.model())
    template = init_state(C.model(), C.spec(), tx, seed=3, ema=True)
    result = fit(train_step(lf, tx, ema_decay=0.9), template, batches, steps=int(steps), out_dir=directory,
                 checkpoint_every=5, log_every=5, keep=3)
    np.savez(out, flat=C.flat(result.state), step=result.step)


if __name__ == "__main__":
    {"devices": devices_main, "process": process_main, "resume": resume_main}[mode](*sys.argv[2:])
