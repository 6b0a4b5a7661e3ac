"""Many devices (8 simulated CPU devices, in a subprocess) and many processes (2 on localhost) vs one device."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, init_state, train_step
from deepcore.train.loop import fit

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("train_test_parallel")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
ENV = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}


@pytest.fixture(scope="session")
def eight_devices(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dev") / "result.json")
    proc = subprocess.run([sys.executable, WORKER, "devices", out], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.mark.parametrize("mode", ["replicated", "fsdp", "fsdp_accum"])
def test_eight_devices_match_one_device_sgd(eight_devices, mode):
    r = eight_devices[mode]
    assert r["step"] == 6
    assert r["max_param_diff"] < 1e-6, r
    assert r["max_loss_diff"] < 1e-6, r
    # data parallel keeps a whole copy per device; fully sharded splits the (16, 16)... weights 8 ways
    assert r["w_shards"] == (1 if mode == "replicated" else 8)  # fsdp_accum: 2 micro-batches per step


def test_checkpoint_from_eight_devices_restores_onto_one_and_four(eight_devices):
    for n in ("1", "4"):
        r = eight_devices["restore"][n]
        assert r["exact"], r
        assert r["devices"] == int(n)
        assert r["meta"] == {"mode": "fsdp"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    port, out = _free_port(), str(tmp_path / "params.npz")
    procs = [subprocess.Popen([sys.executable, WORKER, "process", str(port), "2", str(i), out], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    got = np.load(out)
    assert int(got["processes"]) == 2 and int(got["devices"]) == 2

    tx = optax.sgd(0.5)  # the worker's optimiser and steps, on this process's single device
    result = fit(train_step(classifier_loss(C.model()), tx), init_state(C.model(), C.spec(), tx, seed=0),
                 C.batches, steps=6, log_every=1, stream=open(os.devnull, "w"))
    ref_losses = np.array([r["loss"] for r in result.history])
    np.testing.assert_allclose(got["losses"], ref_losses, atol=1e-6)
    assert np.max(np.abs(got["flat"] - C.flat(result.state.params))) < 1e-6


def test_a_batch_that_does_not_split_over_the_devices_is_refused_naming_sizes():
    from types import SimpleNamespace

    from deepcore.train.parallel import check_batch

    four = SimpleNamespace(shape={"data": 4})                     # check_batch reads only the mesh's axis size
    check_batch({"x": np.zeros((8, 3)), "y": np.zeros(8)}, four, process_count=1)
    with pytest.raises(ValueError, match=r"^shard_batch: batch\['x'\]: expected a batch size divisible by the 4 "
                                         r"devices of mesh axis 'data', got 6 rows$"):
        check_batch({"x": np.zeros((6, 3)), "y": np.zeros(6)}, four, process_count=1)
    check_batch({"x": np.zeros((2, 3))}, four, process_count=2)  # 2 processes x 2 local rows
    # the real thing on 2 simulated devices: deepcore's line, not jax's
    code = ("import numpy as np; from deepcore.train import parallel as P\n"
            "try:\n    P.shard_batch({'x': np.zeros((3, 2))}, P.make_mesh())\n"
            "except ValueError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**ENV, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert proc.stdout.strip() == ("shard_batch: batch['x']: expected a batch size divisible by the 2 devices of "
                                   "mesh axis 'data', got 3 rows"), proc.stderr[-2000:]
