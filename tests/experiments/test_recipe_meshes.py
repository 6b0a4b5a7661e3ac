"""--mesh/--rules in the recipes on the generic train step (cnn.py, mlp.py, vit.py, char_rnn.py:
deepcore.train.sharding.plan through meshes.mesh_plan): a smoke run on a data x tensor mesh of simulated devices, one-line refusals of rule sets
that do not fit the model (char_transformer.py: test_transformer_scripts.py), and deepcore.train.fit_report of
the run's config and of the same recipe flags."""
import json
import math
import subprocess
import sys

import _compile_cache
import pytest
from _scripts import FIELDS, records, run, script

SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mesh") / "cnn"
    res, _ = run("cnn.py", out, "--widths", "8", "16", "--depths", "1", "1", "--batch-size", "32",
                 "--devices", "4", "--mesh", "data=2,tensor=2")
    return out, res


@SHARED_DATA
def test_cnn_on_a_data_x_tensor_mesh(cnn_run):
    out, res = cnn_run
    assert FIELDS <= set(res) and res["steps"] == 6 and len(res["devices"]) == 4
    assert res["config"]["mesh"] == "data=2,tensor=2" and res["config"]["rules"] == "default"
    m = res["metrics"]
    assert 0.0 <= m["test_accuracy"] <= 1.0 and math.isfinite(m["test_loss_nats"])
    assert [r["step"] for r in records(out) if r.get("split") == "val"] == [3, 6]


def test_char_rnn_fully_sharded(tmp_path):
    res, _ = run("char_rnn.py", tmp_path / "lm", "--seq-len", "16", "--batch-size", "8", "--sample-chars", "4",
                 "--temperatures", "0.8", "--devices", "2", "--mesh", "fsdp=2")
    assert res["steps"] == 8 and res["config"]["mesh"] == "fsdp=2" and len(res["devices"]) == 2
    assert res["metrics"]["val_loss_nats_per_char"] < math.log(res["vocab_size"])


def fit_report(*flags):
    return subprocess.run([sys.executable, "-m", "deepcore.train.fit_report", *flags], capture_output=True,
                          text=True, timeout=300, env=_compile_cache.env())


@SHARED_DATA
def test_fit_report_of_the_cnn_run_and_of_its_flags(cnn_run):
    out, res = cnn_run
    proc = fit_report("--config", str(out / "results.json"), "--json")   # nothing allocated, nothing read
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["parameters"] == res["parameters"] and r["what"].endswith("on mesh data=2,tensor=2")
    whole = 4 * res["parameters"]   # float32: tensor=2 splits the conv kernels and the head, not the norms
    assert whole / 2 < r["params"] < whole and r["opt_state"] >= 2 * r["params"], r
    assert r["total"] == r["arguments"] + r["outputs"] - r["aliased"] + r["temporaries"] > r["params"], r
    flags = fit_report("--experiment", "cnn", "--widths", "8", "16", "--depths", "1", "1", "--batch-size", "32",
                       "--mesh", "data=2,tensor=2", "--json")   # the same config by the recipe's flags
    assert flags.returncode == 0 and json.loads(flags.stdout) == r, flags.stderr[-2000:]
    bad = fit_report("--config", str(out / "results.json"), "--mesh", "tensor=4")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.strip() == (
        "fit_report: error: --rules default on --mesh tensor=4: params/net/head/dense_0/b: dim 0 ('dense_out') of "
        "size 10 does not divide over mesh axes ('tensor',) of 4 devices")


@SHARED_DATA
@pytest.mark.parametrize("name,flags,message", [
    ("cnn.py", ["--mesh", "tensor=4"], "--rules default on --mesh tensor=4: params/net/head/dense_0/b: dim 0 "
     "('dense_out') of size 10 does not divide over mesh axes ('tensor',) of 4 devices"),
    ("mlp.py", ["--mesh", "tensor=4"], "--rules default on --mesh tensor=4: params/net/dense_2/b: dim 0 "
     "('dense_out') of size 10 does not divide over mesh axes ('tensor',) of 4 devices"),
    ("vit.py", ["--mesh", "tensor=4", "--rules", "default,classes=tensor"], "--rules default,classes=tensor on "
     "--mesh tensor=4: params/net/head/b: dim 0 ('classes') of size 10 does not divide over mesh axes"),
    ("char_rnn.py", ["--mesh", "fsdp=4", "--embed", "10"], "--rules default on --mesh fsdp=4: params/embedding/w: "
     "dim 1 ('embed') of size 10 does not divide over mesh axes ('fsdp',) of 4 devices"),
    ("mlp.py", ["--mesh", "data=2,tensor=3"],
     "--mesh: expected name=size[,name=size...] with sizes multiplying to --devices 4, got data=2,tensor=3"),
    ("cnn.py", ["--rules", "megatron"], "--rules: expected a rule set of deepcore.train.sharding.RULE_SETS"),
])
def test_a_rule_set_that_does_not_fit_is_one_line(tmp_path, name, flags, message):
    proc = script(name, "--smoke", "--out", str(tmp_path), "--devices", "4", *flags, timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experiments/{name}: error: {message}"), lines
