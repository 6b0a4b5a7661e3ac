"""experiments/finetune.py --smoke: pretrain, full and LoRA fine-tuning write the documented results."""
import json
import os
import subprocess
import sys

import _compile_cache
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.realdata
def test_finetune_smoke(tmp_path):
    if not os.path.isdir("/usr/share/games/fortunes"):
        pytest.skip("the Debian fortunes package holds the pretraining corpus")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "finetune.py"), "--smoke", "--out",
                           str(out), "--seq-len", "16", "--batch-size", "8", "--rank", "2"],
                          capture_output=True, text=True, timeout=600,
                          env=_compile_cache.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert res["experiment"] == "finetune" and {"config", "versions", "devices", "wall_s"} <= set(res)
    assert m["lora_trainable_params"] == 2 * 2 * (32 + 96)   # 2 layers x rank 2 x qkv (the default --lora-on)
    assert m["lora_opt_state_bytes"] < m["full_opt_state_bytes"] / 5
    assert abs(m["lora_merged_val_bits_per_char"] - m["lora_val_bits_per_char"]) < 1e-4
    for k in ("target_val_bits_per_char_before", "full_val_bits_per_char", "lora_val_bits_per_char",
              "before_test_bits_per_char", "full_test_bits_per_char", "lora_test_bits_per_char"):
        assert 0 < m[k] < 10, m
    assert m["full_val_bits_per_char"] < m["target_val_bits_per_char_before"]
    for phase in ("pretrain", "full", "lora"):
        assert (out / phase / "metrics.jsonl").exists()

    # --pretrained reuses that run's pretraining: the same pretrained model, no pretraining step run again
    again = tmp_path / "again"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "finetune.py"), "--smoke", "--out",
                           str(again), "--seq-len", "16", "--batch-size", "8", "--rank", "2", "--lora-on", "attention",
                           "--pretrained", str(out / "pretrain")], capture_output=True, text=True, timeout=600,
                          env=_compile_cache.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    m2 = json.loads((again / "results.json").read_text())["metrics"]
    assert m2["pretrain_val_bits_per_char"] == m["pretrain_val_bits_per_char"]
    assert m2["target_val_bits_per_char_before"] == m["target_val_bits_per_char_before"]
    assert m2["lora_trainable_params"] == 2 * 2 * ((32 + 96) + (32 + 32))   # qkv and out
    assert (again / "pretrain" / "metrics.jsonl").read_text() == (out / "pretrain" / "metrics.jsonl").read_text()
