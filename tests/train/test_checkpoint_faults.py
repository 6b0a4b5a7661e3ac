"""Fault injection into the checkpoint store: a damaged newest checkpoint on resume, a disk filling up during a save."""
import gc
import glob
import io
import logging
import os
import re
import shutil
import subprocess
import time

import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.checkpoint import Checkpointer, CheckpointWriteError
from deepcore.train.damage import DamagedCheckpoints
from deepcore.train.loop import fit

pytestmark = pytest.mark.xdist_group("train_test_checkpoint_faults")

TX = optax.adam(1e-2)
LOSS = classifier_loss(C.model())


def fresh():
    return init_state(C.model(), C.spec(), TX, seed=0)


@pytest.fixture(scope="session")
def step():
    return train_step(LOSS, TX)


@pytest.fixture(scope="session")
def pristine(tmp_path_factory, step):
    """A run of 6 steps with checkpoints 2, 4, 6, and the state of an uninterrupted 8-step run."""
    run = tmp_path_factory.mktemp("pristine")
    fit(step, fresh(), C.batches, steps=6, out_dir=str(run), checkpoint_every=2, keep=10, stream=io.StringIO())
    ref = fit(step, fresh(), C.batches, steps=8, stream=io.StringIO())
    return run, C.flat(ref.state)


def _array_file(d):
    return max(glob.glob(os.path.join(d, "state", "d", "*")), key=os.path.getsize)


def _nan_checkpoint(d):
    """Replace the checkpoint in ``d`` by one holding NaN parameters (as written before the state guard existed)."""
    state = fresh()
    state = state.replace(step=state.step + 6, params={k: {n: a * np.nan for n, a in v.items()}
                                                       for k, v in state.params.items()})
    shutil.rmtree(d)
    with Checkpointer(os.path.dirname(d), keep=None) as ck:
        ck.save(6, state, {"best": None, "bad_evals": 0})


DAMAGE = {  # how the newest checkpoint is damaged -> what the report must say
    "truncated array file": (lambda d: open(_array_file(d), "r+").truncate(100), r"state/d/\w+ is truncated"),
    "deleted array file": (lambda d: os.remove(_array_file(d)), r"state/d/\w+ is missing"),
    "missing metadata": (lambda d: os.remove(os.path.join(d, "state", "_METADATA")), "state/_METADATA is missing"),
    "emptied manifest": (lambda d: open(os.path.join(d, "state", "manifest.ocdbt"), "w").close(),
                         "state/manifest.ocdbt is empty"),
    "non-finite values": (_nan_checkpoint, "non-finite values in params/"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_newest_checkpoint_is_reported_set_aside_and_resume_continues_from_the_one_before(
        tmp_path, pristine, step, kind):
    run = tmp_path / "run"
    shutil.copytree(pristine[0], run)
    damage, why = DAMAGE[kind]
    damage(str(run / "checkpoints" / "6"))
    before = C.hashes(run)
    out = io.StringIO()
    r = fit(step, fresh(), C.batches, steps=8, out_dir=str(run), checkpoint_every=2, keep=10, stream=out)
    lines = [ln for ln in out.getvalue().splitlines() if "damaged" in ln]
    assert len(lines) == 1, out.getvalue()
    assert re.fullmatch(rf"checkpoint step 6 in {re.escape(str(run / 'checkpoints'))} is damaged \(.*{why}.*\); "
                        rf"moved to {re.escape(str(run / 'checkpoints-damaged' / '6'))}; resuming from step 4",
                        lines[0]), lines[0]
    assert r.stop_reason == "done" and r.step == 8
    np.testing.assert_array_equal(C.flat(r.state), pristine[1])  # resumed from step 4: the exact trajectory
    after = C.hashes(run)
    moved = {k.replace("checkpoints/6/", "checkpoints-damaged/6/"): v for k, v in before.items()}
    kept = {k: v for k, v in moved.items() if not k.startswith("metrics.jsonl")}
    assert {k: after.get(k) for k in kept} == kept  # the damaged files moved unchanged, steps 2 and 4 untouched
    assert sorted(os.listdir(run / "checkpoints")) == ["2", "4", "6", "8"]


def test_no_intact_checkpoint_moves_nothing_and_names_every_step(tmp_path, pristine, step):
    run = tmp_path / "run"
    shutil.copytree(pristine[0], run)
    for s in (2, 4, 6):
        os.remove(run / "checkpoints" / str(s) / "state" / "_METADATA")
    before = C.hashes(run)
    with pytest.raises(DamagedCheckpoints, match=r"no intact checkpoint in .*/checkpoints \(nothing was moved\): "
                                                 r"step 6: state/_METADATA is missing; step 4: .*; step 2: "):
        fit(step, fresh(), C.batches, steps=8, out_dir=str(run), checkpoint_every=2, stream=io.StringIO())
    assert C.hashes(run) == before


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (needs root and mount); skipped with the reason otherwise."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs to fill: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(mnt, leave: int):
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(mnt).free - leave))


def test_full_disk_during_a_save_is_one_line_leaves_no_temporaries_and_keeps_earlier_checkpoints(small_fs, step):
    run = small_fs / "run"
    ckdir = run / "checkpoints"
    seen = {}

    def batches(start):
        for t, b in enumerate(C.batches(start), start):
            if t == 7:  # checkpoint 6 is being written: wait until it is committed, then fill the disk
                deadline = time.time() + 30
                while not (ckdir / "6").is_dir() or any(not d.isdigit() for d in os.listdir(ckdir)):
                    assert time.time() < deadline, "checkpoint 6 was never committed"
                    time.sleep(0.01)
                seen["before"] = C.hashes(ckdir)
                _fill(small_fs, 8192)
            yield b

    with pytest.raises(CheckpointWriteError) as err:
        fit(step, fresh(), batches, steps=12, out_dir=str(run), checkpoint_every=3, keep=10, stream=io.StringIO())
    msg = str(err.value)
    assert "\n" not in msg and str(ckdir) in msg and "no space left on device" in msg, msg
    assert "the checkpoint of step 9 could not be written" in msg and "checkpoints up to step 6 are intact" in msg
    assert re.search(r"a checkpoint needs about \d+ KiB, \d+ KiB free", msg), msg
    assert not [p for p in glob.glob(str(small_fs / "**"), recursive=True) if "orbax-checkpoint-tmp" in p]
    assert sorted(os.listdir(ckdir)) == ["3", "6"] and C.hashes(ckdir) == seen["before"]
    assert not (run / "run.lock").exists()
    # with space again, the run resumes from step 6 and finishes
    os.remove(small_fs / "filler")
    r = fit(step, fresh(), C.batches, steps=12, out_dir=str(run), checkpoint_every=3, keep=10, stream=io.StringIO())
    assert r.stop_reason == "done" and r.step == 12


def test_a_script_resuming_past_a_damaged_checkpoint_prints_one_line_and_no_orbax_tracebacks(tmp_path):
    """A real process (no test harness hooks): the report is the only output about the damage."""
    import sys

    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
    run = tmp_path / "run"

    def resume(steps):
        return subprocess.run([sys.executable, worker, "resume", str(run), str(steps), "-1", "-1",
                               str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=120)

    tx = optax.adam(0.05)  # the worker's run, its first 10 steps written here (one process start less)
    fit(train_step(LOSS, tx, ema_decay=0.9), init_state(C.model(), C.spec(), tx, seed=3, ema=True), C.batches,
        steps=10, out_dir=str(run), checkpoint_every=5, log_every=5, stream=io.StringIO())
    open(_array_file(str(run / "checkpoints" / "10")), "r+").truncate(100)
    done = resume(15)
    assert done.returncode == 0, done.stderr[-3000:]
    damaged = [ln for ln in (done.stdout + done.stderr).splitlines() if "damage" in ln or "Traceback" in ln
               or "Event loop" in ln or "absl" in ln]
    assert len(damaged) == 1 and "checkpoint step 10 in " in damaged[0] and "is truncated" in damaged[0] and \
        damaged[0].endswith("resuming from step 5"), (damaged, (done.stdout + done.stderr)[-6000:])


def _unretrieved_task_error(message):
    """Leave a finished asyncio task's exception unretrieved, as a failed restore leaves its sibling reads, and
    let the garbage collector meet it (asyncio then logs "Task exception was never retrieved")."""
    import asyncio

    async def read():
        raise ValueError(message)

    loop = asyncio.new_event_loop()
    task = loop.create_task(read())
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    assert task.done()
    del task
    gc.collect()


def test_the_stores_unretrieved_read_errors_are_not_logged_and_other_ones_are(caplog):
    # seen in 1 of 80 resumes past a truncated checkpoint under load: four sibling reads' OUT_OF_RANGE errors were
    # logged with tracebacks beside the one-line report (they reach the garbage collector at a random time)
    from deepcore.train.checkpoint import _quiet_orbax
    _quiet_orbax()   # what a Checkpointer installs
    read_error = 'OUT_OF_RANGE: Error reading "params.w/.zarray" [tensorstore_spec=\'{"driver":"zarr"}\']'

    def logged(message):   # asyncio's reports of this test's task (an earlier test's, e.g. a simulated full
        return [r for r in caplog.records   # disk's, can reach the collector now too: not this test's subject)
                if r.name == "asyncio" and r.exc_info and str(r.exc_info[1]) == message]

    gc.collect()   # earlier tests' unretrieved futures report now, before the capture
    with caplog.at_level(logging.ERROR):
        _unretrieved_task_error(read_error)
        assert not logged(read_error)
        _unretrieved_task_error("an unrelated failure")
        assert len(logged("an unrelated failure")) == 1
        assert "never retrieved" in logged("an unrelated failure")[0].getMessage()
