"""One run per output folder, and ``--resume`` without a checkpoint: the fault is one line and the folder is unchanged."""
import io
import os
import signal
import socket
import subprocess
import sys

import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.loop import fit
from deepcore.train.runlock import RunLock, RunLocked

pytestmark = pytest.mark.xdist_group("train_test_runlock")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
TX = optax.sgd(0.1)
# another process holding the lock (runlock.py loaded alone: no JAX import, so it starts fast)
HOLDER = """import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("runlock", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
m.RunLock(sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """``start(directory)``: a process that holds ``directory``'s lock until killed; returns it."""
    procs = []

    def start(directory):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, os.path.join(ROOT, "deepcore", "train", "runlock.py"),
                              str(directory)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _fit(directory, stream=None):
    return fit(train_step(classifier_loss(C.model()), TX), init_state(C.model(), C.spec(), TX, seed=0), C.batches,
               steps=2, out_dir=str(directory), checkpoint_every=2, stream=stream or io.StringIO())


def test_a_second_run_on_a_locked_folder_refuses_and_a_killed_owner_is_recognised_as_stale(tmp_path, holder):
    run = tmp_path / "run"
    owner = holder(run)
    before = C.hashes(run)
    with pytest.raises(RunLocked, match=rf"{run} is in use by pid {owner.pid} on host {socket.gethostname()} "
                                        rf"\(since .*; lock file {run}/run.lock\)"):
        _fit(run)
    assert C.hashes(run) == before and os.listdir(run) == ["run.lock"]

    owner.send_signal(signal.SIGKILL)
    owner.wait()
    out = io.StringIO()
    r = _fit(run, out)
    assert r.stop_reason == "done" and r.step == 2
    assert f"taking over the lock of pid {owner.pid} on host {socket.gethostname()}, which is no longer running" \
        in out.getvalue()
    assert not (run / "run.lock").exists()  # released at the end


def test_the_lock_is_reentrant_in_one_process_and_released_on_exit(tmp_path):
    with RunLock(tmp_path) as outer:
        with RunLock(tmp_path) as inner:
            assert inner.stale is None and (tmp_path / "run.lock").exists()
        assert (tmp_path / "run.lock").exists() and outer.stale is None
    assert not (tmp_path / "run.lock").exists()


def _script(argv, main=lambda args: {"ok": True}):
    """``common.run`` of a minimal experiment: (exit status, stderr lines, return value)."""
    import contextlib

    import common

    err = io.StringIO()
    code, value = 0, None
    with contextlib.redirect_stderr(err):
        try:
            value = common.run(main, common.parser("fake", "a fake experiment"), argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue().splitlines(), value


def test_experiment_script_refuses_a_folder_in_use_in_one_line(tmp_path, holder):
    run = tmp_path / "run"
    owner = holder(run)
    before = C.hashes(run)
    code, lines, value = _script(["--out", str(run), "--steps", "1"])
    assert code == 2 and value is None and len(lines) == 1, lines
    assert lines[0].startswith(f"experiments/fake.py: error: --out {run} is in use by pid {owner.pid} on host ")
    assert C.hashes(run) == before


def test_resume_without_a_checkpoint_stops_in_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo"
    code, lines, _ = _script(["--out", str(missing), "--resume", "--steps", "1"])
    assert code == 2 and len(lines) == 1 and not missing.exists(), lines
    assert lines[0] == (f"experiments/fake.py: error: --resume: {missing} does not exist, so there is nothing to "
                        f"continue; run without --resume to start a new run")
    run = tmp_path / "killed-early"  # a run killed before its first checkpoint
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')
    before = C.hashes(run)
    code, lines, _ = _script(["--out", str(run), "--resume", "--steps", "1"])
    assert code == 2 and len(lines) == 1 and f"{run} holds no checkpoint" in lines[0], lines
    assert C.hashes(run) == before
    _fit(run / "sub")  # a checkpoint anywhere below --out (e.g. one per configuration) counts
    code, lines, value = _script(["--out", str(run), "--resume", "--steps", "1"])
    assert code == 0 and value == {"ok": True}, lines


@pytest.mark.parametrize("fault", ["write", "damaged"])
def test_experiment_script_reports_checkpoint_faults_in_one_line(tmp_path, fault):
    from deepcore.train.checkpoint import CheckpointWriteError
    from deepcore.train.damage import DamagedCheckpoints

    def main(args):
        if fault == "write":
            raise CheckpointWriteError(f"the checkpoint of step 9 could not be written to {args.out}/checkpoints: "
                                       "no space left on device")
        raise DamagedCheckpoints(f"no intact checkpoint in {args.out}/checkpoints (nothing was moved): step 2: x")

    code, lines, _ = _script(["--out", str(tmp_path), "--steps", "1"], main)
    assert code == 2 and len(lines) == 1 and f"{tmp_path}/checkpoints" in lines[0], lines
    assert not (tmp_path / "run.lock").exists()
