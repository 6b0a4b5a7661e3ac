"""Sharding by rules (deepcore.train.sharding): 8 simulated CPU devices in a subprocess vs one device, and the
errors a mis-specified rule set raises before anything compiles."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.layers import Dense, Relu, serial
from deepcore.layers.logical import logical_axes
from deepcore.models.transformer import TransformerLM
from deepcore.train.sharding import param_specs

pytestmark = pytest.mark.xdist_group("train_test_sharding")

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
LAYOUTS = ["data", "fsdp", "tensor", "data_x_tensor", "fsdp_x_tensor"]


@pytest.fixture(scope="session")
def eight(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shard") / "result.json")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "_shard_worker.py"), out], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.mark.parametrize("model", ["lm", "cnn"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_matches_one_device_after_ten_sgd_steps(eight, model, layout):
    r = eight[f"{model}/{layout}"]
    assert r["param_diff"] < 1e-6, r
    assert r["loss_diff"] < 1e-6, r   # the same loss curve
    # the probed weight (the MLP's fc / the second conv) is really split: 8 ways, or 4 under data(2) x tensor(4)
    want = {"data": 1, "data_x_tensor": 4}.get(layout, 8)
    assert r["w_shards"] == want, r
    if "tensor" in layout:
        assert "tensor" in r["w_spec"], r


def test_sequence_sharded_activations_match_one_device_after_ten_sgd_steps(eight):
    r = eight["lm/sequence"]   # mesh data=2 x seq=4, rules "default,length=seq": weights whole, (B, T, ...) split
    assert r["param_diff"] < 1e-6 and r["loss_diff"] < 1e-6, r
    assert r["w_shards"] == 1, r
    assert r["constraints"] == [7, 7], r   # embedding, 2 residual adds, MLP hidden, q, k, v (the scanned block's body): all split along T


def test_per_device_parameter_bytes_are_about_an_eighth_under_tensor_or_fsdp(eight):
    whole = eight["param_bytes"]
    one = eight["memory/one"]
    assert one["arguments"] >= whole and one["params"] == whole
    for layout in ("tensor", "fsdp"):
        m = eight[f"memory/{layout}"]
        # compiled argument bytes (params + a small batch; SGD keeps no state): 1/8 of the matrices plus the
        # replicated norms / biases / position table (~3% of this small model)
        assert whole / 8 <= m["params"] <= m["arguments"] < 0.16 * one["arguments"], (layout, m, one)
        assert m["temporaries"] < one["temporaries"], (layout, m, one)


def test_a_checkpoint_written_under_data_x_tensor_restores_under_fsdp_and_on_one_device(eight):
    for target, devices in (("fsdp", 8), ("one", 1)):
        r = eight["restore"][target]
        assert r["exact"] and r["devices"] == devices, r
        assert r["meta"] == {"layout": "data_x_tensor"}


def test_two_processes_on_a_data_x_tensor_mesh_match_one_device(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, worker = str(tmp_path / "params.npz"), os.path.join(HERE, "_shard_worker.py")
    procs = [subprocess.Popen([sys.executable, worker, "process", str(port), str(i), out], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    got = np.load(out)
    assert int(got["processes"]) == 2 and int(got["devices"]) == 4
    import _shard_worker   # (tests/train is on sys.path, as for _common)
    ref_flat, ref_losses = _shard_worker.reference()
    np.testing.assert_allclose(got["losses"], ref_losses, atol=1e-6)
    assert np.max(np.abs(got["flat"] - ref_flat)) < 1e-6


# ----------------------------------------------------------------------------- mis-specified rules

MESH = SimpleNamespace(shape={"data": 2, "tensor": 4})   # param_specs reads only the axis sizes


def _lm():
    model = TransformerLM(vocab_size=30, d_model=16, num_layers=2, num_heads=4, max_len=8)
    spec = jax.ShapeDtypeStruct((2, 8), jnp.int32)
    params = jax.eval_shape(lambda k: model.init(k, spec)[1], jax.random.PRNGKey(0))
    return params, logical_axes(model, spec)


GOOD = [("layers", None), ("embed", None), ("mlp", "tensor"), ("heads", "tensor"), ("qkv", "tensor"),
        ("vocab", None), ("max_len", None), ("norm", None)]


def test_a_complete_rule_list_gives_megatron_specs():
    params, axes = _lm()
    specs = param_specs(params, MESH, GOOD, axes)
    assert specs["blocks"]["mlp"]["fc"]["w"] == jax.P(None, None, "tensor")
    assert specs["blocks"]["mlp"]["proj"]["w"] == jax.P(None, "tensor", None)
    assert specs["blocks"]["attn"]["out"]["w"] == jax.P(None, "tensor", None)
    assert specs["embed"]["w"] == jax.P(None, None)
    # a named set checks divisibility too (vocab 30 over tensor 4); a text override keeps the vocabulary whole
    with pytest.raises(ValueError, match=r"^params/embed/w: dim 0 \('vocab'\) of size 30 does not divide"):
        param_specs(params, MESH, "default", axes)
    specs = param_specs(params, MESH, "default,vocab=", axes)
    assert specs["embed"]["w"] == jax.P(None, None) and specs["head"]["w"] == jax.P(None, None)
    assert specs["blocks"]["attn"]["qkv"]["w"] == jax.P(None, None, "tensor")


@pytest.mark.parametrize("rules, message", [
    (GOOD + [("embd", "data")], r"^rule \('embd', 'data'\): matches no logical axis of the parameters"),
    ([r for r in GOOD if r[0] != "mlp"],
     r"^params/blocks/mlp/fc/b: logical axis 'mlp' \(dim 1 of shape \(2, 64\)\) matches no rule$"),
    ([("vocab", "tensor")] + GOOD, r"^params/embed/w: dim 0 \('vocab'\) of size 30 does not divide over mesh axes "
                                   r"\('tensor',\) of 4 devices$"),
    ([("mlp", "model")] + GOOD, r"^rule \('mlp', 'model'\): mesh axis 'model' is not one of the mesh's"),
])
def test_every_mis_specified_rule_set_fails_naming_the_path(rules, message):
    params, axes = _lm()
    with pytest.raises(ValueError, match=message):
        param_specs(params, MESH, rules, axes)


def test_a_layer_without_declared_axes_is_named():
    from deepcore.core import layer
    bare = layer("bare", lambda key, spec: (spec, {"w": jnp.zeros((3,))}, {}), lambda p, s, x, **k: (x, s))
    model = serial(Dense(4), Relu, bare)
    with pytest.raises(ValueError, match=r"^params/bare_0: layer 'bare' declares no logical axes"):
        logical_axes(model, jax.ShapeDtypeStruct((2, 3), jnp.float32))
    assert logical_axes(serial(Dense(4)), jax.ShapeDtypeStruct((2, 3), jnp.float32)) == {
        "dense_0": {"w": ("dense_in", "dense_out"), "b": ("dense_out",)}}


def test_fit_report_says_in_one_line_when_a_config_does_not_fit():
    args = ["--d-model", "32", "--layers", "1", "--heads", "4", "--vocab", "64", "--seq", "16", "--batch", "8",
            "--mesh", "data=2,tensor=2"]
    run = lambda extra: subprocess.run([sys.executable, "-m", "deepcore.train.fit_report", *args, *extra],
                                       env=ENV, capture_output=True, text=True, timeout=300)
    no = run(["--device-memory", "64KB"])
    assert no.returncode == 1 and no.stdout == "", no.stderr[-2000:]
    line, = no.stderr.strip().splitlines()
    assert line.startswith("fit_report: lm d_model=32 layers=1 "), line
    assert "on mesh data=2,tensor=2: does not fit: needs " in line, line
    assert line.endswith("more than the 0.1 MiB of device memory"), line
    yes = run(["--device-memory", "1GB"])
    assert yes.returncode == 0 and "per device (params " in yes.stdout, yes.stderr[-2000:]


def test_with_rules_pins_the_transformers_activations_and_nothing_without():
    from deepcore.train import classifier_loss
    from deepcore.train.sharding import make_mesh, with_rules
    model = TransformerLM(vocab_size=16, d_model=16, num_layers=1, num_heads=4, max_len=8)
    _, params, state = model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 8), jnp.int32))
    batch = {"x": jnp.zeros((2, 8), jnp.int32), "y": jnp.zeros((2, 8), jnp.int32)}
    mesh = make_mesh({"tensor": 1}, jax.devices()[:1])
    text = lambda lf: jax.jit(lambda p, b: lf(p, state, b, None, False)[0]).lower(params, batch).as_text()
    # embedding output, 2 residual adds, the MLP hidden and q, k, v of the one block
    assert text(with_rules(classifier_loss(model), mesh)).count("sharding_constraint") == 7
    assert text(classifier_loss(model)).count("sharding_constraint") == 0


def test_models_composed_of_declared_layers_have_axes_throughout():
    from deepcore.models.resnet import ResNet
    axes = logical_axes(ResNet(4, widths=(8,), depths=(1,)), jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32))
    leaves = jax.tree.leaves(axes, is_leaf=lambda v: isinstance(v, tuple))
    assert leaves and all(isinstance(t, tuple) and t for t in leaves)
    assert {"conv_out", "norm", "dense_in"} <= {n for t in leaves for n in t}
    from deepcore.models.vit import ViT
    axes = logical_axes(ViT(10, d_model=16, num_layers=2), jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32))
    assert axes["blocks"]["mlp"]["fc"]["w"] == ("layers", "embed", "mlp") and axes["cls"] == ("cls", "embed")
