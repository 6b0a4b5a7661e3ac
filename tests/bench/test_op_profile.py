"""bench/op_profile.py: a per-operation profile of one workload step, grouped into kinds."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.op_profile import kind  # noqa: E402


def test_kinds_of_operation_names():
    assert kind("convolution.3") == kind("aten::mkldnn_convolution") == kind("ynn_conv_fusion") == "convolution"
    assert kind("dot.2") == kind("aten::addmm") == "matmul"
    assert kind("transpose_copy_fusion.1") == "layout"
    assert kind("wrapped_reduce-window") == kind("aten::max_pool2d_with_indices") == "reduction"
    assert kind("loop_add_fusion") == kind("aten::clamp_min") == "elementwise/fused"
    assert kind("ynn_fusion.21").startswith("library fusion") and kind("ynn_fusion") == kind("ynn_fusion.3")


def test_profile_of_a_conv_step_finds_its_convolutions():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "op_profile.py"), "--impl", "pure_jax",
                           "--workload", "W2", "--size", "tiny", "--steps", "2", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["wall_ms_per_step"] > 0 and out["op_ms_per_step"] > 0
    assert out["kinds_ms"].get("convolution", 0) > 0                  # W2's convolutions are seen and named
    assert abs(sum(out["kinds_ms"].values()) - out["op_ms_per_step"]) < 1e-6 * max(1.0, out["op_ms_per_step"])
    assert not any(name.startswith(("$", "ThunkExecutor", "PjitFunction")) for name in out["top_ms"])
