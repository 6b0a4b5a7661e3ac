"""Smoke run of experiments/translate.py: results.json with finite chrF / CER (beam, greedy, copy), samples.txt,
and one-line refusals."""
import gzip
import math
import os

import pytest
from _scripts import FIELDS, run, script

pytestmark = pytest.mark.skipif(not os.path.isfile("/usr/share/dictd/freedict-eng-fra.index"),
                                reason="apt-get install dict-freedict-eng-fra")


def test_translate_smoke_run(tmp_path):
    out = tmp_path / "run"
    reverse = os.path.isfile("/usr/share/dictd/freedict-fra-eng.index")
    results, proc = run("translate.py", out, "--extra-reverse", "auto")
    assert FIELDS <= set(results) and results["experiment"] == "translate" and results["steps"] == 6
    assert results["extra_reverse"] == ("fra-eng" if reverse else None)
    assert results["extra_train_pairs"] == (256 if reverse else 0) and results["train_pairs"] == 256 + (256 * reverse)
    assert results["extra_dropped_held_out"] > 100 if reverse else results["extra_dropped_held_out"] == 0
    m = results["metrics"]
    for split in ("val", "test"):
        for name in ("beam", "greedy", "copy"):
            assert 0 <= m[f"{split}_chrf_{name}"] <= 100 and math.isfinite(m[f"{split}_cer_{name}"])
            assert 0 <= m[f"{split}_exact_{name}"] <= 1
    assert m["test_chrf_copy"] > 10 and m["test_pairs"] == 64   # cognates: copying scores well above zero
    assert math.isfinite(m["val_loss_nats_per_char"]) and 0 < m["val_loss_nats_per_char"] < 5
    samples = (out / "samples.txt").read_text(encoding="utf-8").splitlines()
    assert samples[0].startswith("translate eng-fra, 64 held-out entries after 6 steps: chrF beam")
    assert len(samples) == 2 + 40 and (out / "curves.png").stat().st_size > 1000
    assert (out / "checkpoints" / "6").is_dir()


def test_translate_refuses_bad_flags_in_one_line(tmp_path):
    proc = script("translate.py", "--heads", "3", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "experiments/translate.py: error: --heads: expected a divisor of --d-model 64, got 3"
    proc = script("translate.py", "--pair", "xxx-yyy", "--smoke", "--out", str(tmp_path / "x"), timeout=120)
    assert proc.returncode == 2 and "apt-get install dict-freedict-xxx-yyy" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with gzip.open(tmp_path / "freedict-xxx-yyy.dict.dz", "wb") as f:   # one entry, 14 bytes ("O" in base 64)
        f.write(b"cat /x/\nchat\n")
    (tmp_path / "freedict-xxx-yyy.index").write_text("cat\tA\tO\n")
    proc = script("translate.py", "--pair", "xxx-yyy", "--data-dir", str(tmp_path), "--extra-reverse", "yes",
                  "--smoke", "--out", str(tmp_path / "y"), timeout=120)
    assert proc.returncode == 2 and "apt-get install dict-freedict-yyy-xxx" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
