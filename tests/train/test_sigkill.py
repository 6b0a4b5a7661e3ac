"""A real subprocess is SIGKILLed mid-training and mid-save, resumed, and ends bit-identical to an uninterrupted run."""
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import optax

import _common as C
from deepcore.train import classifier_loss, fit, init_state, train_step

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
STEPS = 30


def _run(directory, out, kill_step=-1, kill_save=-1):
    return subprocess.run([sys.executable, WORKER, "resume", str(directory), str(STEPS), str(kill_step),
                           str(kill_save), str(out)], capture_output=True, text=True, timeout=120)


def _uninterrupted():
    """The worker's run, in this process, without checkpoints or kills."""
    tx = optax.adam(0.05)
    step = train_step(classifier_loss(C.model()), tx, ema_decay=0.9)
    state = init_state(C.model(), C.spec(), tx, seed=3, ema=True)
    return fit(step, state, C.batches, steps=STEPS, log_every=5, stream=io.StringIO())


def _committed(directory):
    ck = os.path.join(directory, "checkpoints")
    return sorted(int(d) for d in os.listdir(ck) if d.isdigit())


def test_sigkill_mid_training_and_mid_save_then_resume_is_bit_identical(tmp_path):
    run_dir = tmp_path / "run"
    killed = _run(run_dir, tmp_path / "never.npz", kill_step=13)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert max(_committed(run_dir)) in (5, 10)  # 10 only if its background write finished before the kill

    # resume, and die inside the save of step 20 (files written, not yet committed)
    killed = _run(run_dir, tmp_path / "never.npz", kill_save=20)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert max(_committed(run_dir)) == 15
    assert any(not d.isdigit() for d in os.listdir(run_dir / "checkpoints")), "expected an uncommitted temporary"

    done = _run(run_dir, tmp_path / "run.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    ref = _uninterrupted()
    b = np.load(tmp_path / "run.npz")
    assert ref.step == int(b["step"]) == STEPS
    np.testing.assert_array_equal(C.flat(ref.state), b["flat"])  # params, opt state, EMA, step, key: bit-identical
    assert not os.path.exists(tmp_path / "never.npz")
    # metrics.jsonl: records logged after the last checkpoint by a killed run were dropped on resume
    with open(run_dir / "metrics.jsonl") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(5, STEPS + 1, 5))
