"""The 8-simulated-device worker runs once per session (LoRA training and a sharded safetensors load)."""
import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_devices_worker.py")


@pytest.fixture(scope="session")
def eight_devices(tmp_path_factory):
    d = tmp_path_factory.mktemp("devices")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    proc = subprocess.run([sys.executable, WORKER, str(d / "r.json"), str(d / "p.safetensors")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(d / "r.json") as f:
        return json.load(f)
