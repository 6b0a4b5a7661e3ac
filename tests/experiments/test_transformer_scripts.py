"""experiments/char_transformer.py and vit.py: smoke runs write the documented files, one-line errors for bad
flags (the sliding-window sampler is tested in tests/models/test_sliding.py)."""
import math
import os

import numpy as np
import pytest

from _scripts import FIELDS, records, run, script  # also puts experiments/ on sys.path


def test_char_transformer_smoke(tmp_path):
    out = tmp_path / "lm"
    res, proc = run("char_transformer.py", out, "--seq-len", "16", "--batch-size", "16", "--layers", "1",
                    "--sample-chars", "12", "--temperatures", "0.8", "--top-k", "10")
    assert FIELDS <= set(res) and res["experiment"] == "char_transformer" and res["dataset"] == "fortunes"
    assert res["steps"] == 8 and res["config"]["d_model"] == 32 and res["parameters"] < 30_000
    assert res["config"]["top_k"] == 10
    m, V = res["metrics"], res["vocab_size"]
    assert m["val_bits_per_char"] == pytest.approx(m["val_loss_nats_per_char"] / math.log(2), rel=1e-6)
    assert m["val_loss_nats_per_char"] < math.log(V)          # learned something in 8 steps (uniform: ln V)
    assert 2.0 < m["bigram_val_bits_per_char"] < math.log2(V)
    assert m["train_chars_seen"] == 8 * 16 * 16 and m["train_minutes"] > 0
    vals = [r for r in records(out) if r.get("split") == "val"]
    assert vals[-1]["step"] == 8 and vals[-1]["val_loss"] == pytest.approx(m["val_loss_nats_per_char"])
    samples = (out / "samples.txt").read_text(encoding="utf-8", errors="surrogateescape")
    assert samples.startswith("char_transformer on fortunes after 8 steps")
    bodies = samples.split("=== temperature 0.8, sample ")[1:]
    assert len(bodies) == 3 and all(len(b.split("===\n", 1)[1]) in (13, 14) for b in bodies)   # 12 chars + "\n"(s)
    assert os.path.getsize(out / "curves.png") > 1000 and (out / "checkpoints").is_dir()


def test_char_transformer_on_a_data_x_tensor_mesh(tmp_path):
    out = tmp_path / "lm"
    res, _ = run("char_transformer.py", out, "--seq-len", "16", "--batch-size", "16", "--layers", "1",
                 "--sample-chars", "4", "--temperatures", "0.8", "--devices", "4", "--mesh", "data=2,tensor=2")
    assert res["steps"] == 8 and res["config"]["mesh"] == "data=2,tensor=2" and len(res["devices"]) == 4
    assert res["metrics"]["val_loss_nats_per_char"] < math.log(res["vocab_size"])


def test_vit_smoke_mean_pooling(tmp_path):
    out = tmp_path / "vit"
    res, _ = run("vit.py", out, "--pool", "mean", "--batch-size", "32")
    assert FIELDS <= set(res) and res["experiment"] == "vit" and res["dataset"] == "fashion_mnist"
    assert res["steps"] == 6 and res["config"]["pool"] == "mean" and res["config"]["d_model"] == 32
    m = res["metrics"]
    assert 0.0 <= m["test_accuracy"] <= 1.0 and 0.0 <= m["val_accuracy"] <= 1.0
    assert m["test_loss_nats"] < math.log(10) + 0.1 and res["train_examples_per_s"] > 0
    vals = [r for r in records(out) if r.get("split") == "val"]
    assert [r["step"] for r in vals] == [3, 6] and all("val_wall_s" in r for r in vals)
    for picture in ("curves.png", "saliency.png"):
        assert os.path.getsize(out / picture) > 1000


@pytest.mark.parametrize("name,flags,message", [
    ("char_transformer.py", ["--top-k", "-1"], "--top-k: expected a value >= 0, got -1"),
    ("vit.py", ["--d-model", "30", "--heads", "4"], "--heads: expected a divisor of --d-model 30, got 4"),
    ("char_transformer.py", ["--devices", "4", "--mesh", "data=2,tensor=4"],
     "--mesh: expected name=size[,name=size...] with sizes multiplying to --devices 4, got data=2,tensor=4"),
    ("char_transformer.py", ["--smoke", "--devices", "4", "--mesh", "tensor=4"],   # vocabulary 86 over 4
     "--rules default on --mesh tensor=4: params/embed/w: dim 0 ('vocab') of size 86 does not divide over mesh "
     "axes ('tensor',) of 4 devices"),
])
def test_bad_flag_is_one_line(tmp_path, name, flags, message):
    proc = script(name, "--out", str(tmp_path), *flags, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experiments/{name}: error: {message}")
