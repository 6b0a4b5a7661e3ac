"""--mesh/--rules in the image recipes (cnn.py, mlp.py, vit.py: deepcore.train.sharding.plan through
common.mesh_plan): a smoke run on a data x tensor mesh of simulated devices, and one-line refusals of rule sets
that do not fit the model (char_transformer.py: test_transformer_scripts.py)."""
import math

import pytest
from _scripts import FIELDS, records, run, script

SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@SHARED_DATA
def test_cnn_on_a_data_x_tensor_mesh(tmp_path):
    out = tmp_path / "cnn"
    res, _ = run("cnn.py", out, "--widths", "8", "16", "--depths", "1", "1", "--batch-size", "32",
                 "--devices", "4", "--mesh", "data=2,tensor=2")
    assert FIELDS <= set(res) and res["steps"] == 6 and len(res["devices"]) == 4
    assert res["config"]["mesh"] == "data=2,tensor=2" and res["config"]["rules"] == "default"
    m = res["metrics"]
    assert 0.0 <= m["test_accuracy"] <= 1.0 and math.isfinite(m["test_loss_nats"])
    assert [r["step"] for r in records(out) if r.get("split") == "val"] == [3, 6]


@SHARED_DATA
@pytest.mark.parametrize("name,flags,message", [
    ("cnn.py", ["--mesh", "tensor=4"], "--rules default on --mesh tensor=4: params/net/head/dense_0/b: dim 0 "
     "('dense_out') of size 10 does not divide over mesh axes ('tensor',) of 4 devices"),
    ("mlp.py", ["--mesh", "tensor=4"], "--rules default on --mesh tensor=4: params/net/dense_2/b: dim 0 "
     "('dense_out') of size 10 does not divide over mesh axes ('tensor',) of 4 devices"),
    ("vit.py", ["--mesh", "tensor=4", "--rules", "default,classes=tensor"], "--rules default,classes=tensor on "
     "--mesh tensor=4: params/net/head/b: dim 0 ('classes') of size 10 does not divide over mesh axes"),
    ("mlp.py", ["--mesh", "data=2,tensor=3"],
     "--mesh: expected name=size[,name=size...] with sizes multiplying to --devices 4, got data=2,tensor=3"),
    ("cnn.py", ["--rules", "megatron"], "--rules: expected a rule set of deepcore.train.sharding.RULE_SETS"),
])
def test_a_rule_set_that_does_not_fit_is_one_line(tmp_path, name, flags, message):
    proc = script(name, "--smoke", "--out", str(tmp_path), "--devices", "4", *flags, timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experiments/{name}: error: {message}"), lines
