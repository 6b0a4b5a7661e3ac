"""experiments/char_rnn.py and seq_classify.py: smoke runs, a time-budget stop then a resume, one-line errors;
the bigram baseline by hand (the exact validation windows: tests/data/test_corpus.py; the training-time budget:
tests/train/test_budget.py)."""
import math
import os

import numpy as np
import pytest

from deepcore.models.bigram import bigram_bits, bigram_nats, fit_bigram

from _scripts import FIELDS, records, run, script  # also puts experiments/ on sys.path
import charlm  # noqa: E402


# ----------------------------------------------------------------------------- the bigram baseline

def test_bigram_against_hand_counts():
    # pairs of [0 1 1 2 0 1]: (0,1) x2, (1,1), (1,2), (2,0); V = 3, k = 1
    lp = fit_bigram(np.array([0, 1, 1, 2, 0, 1]), 3, k=1.0)
    want = np.array([[1 / 5, 3 / 5, 1 / 5],      # row 0: counts [0 2 0], (c + 1) / (2 + 3)
                     [1 / 5, 2 / 5, 2 / 5],      # row 1: counts [0 1 1], (c + 1) / (2 + 3)
                     [2 / 4, 1 / 4, 1 / 4]])     # row 2: counts [1 0 0], (c + 1) / (1 + 3)
    np.testing.assert_allclose(np.exp(lp), want, rtol=1e-12)
    # [1 2 0 0]: P(2|1) P(0|2) P(0|0) = 2/5, 1/2, 1/5
    nats = -(math.log(2 / 5) + math.log(1 / 2) + math.log(1 / 5)) / 3
    assert bigram_nats(lp, np.array([1, 2, 0, 0])) == pytest.approx(nats, rel=1e-12)
    assert bigram_bits(lp, np.array([1, 2, 0, 0])) == pytest.approx(nats / math.log(2), rel=1e-12)
    half = np.exp(fit_bigram(np.array([0, 1, 1, 2, 0, 1]), 3, k=0.5))
    np.testing.assert_allclose(half[2], [1.5 / 2.5, 0.5 / 2.5, 0.5 / 2.5], rtol=1e-12)   # row 2: (c + .5) / (1 + 1.5)
    for bad, match in (((np.array([0, 1]), 3, 0.0), "k must be > 0"), ((np.array([0, 3]), 3), r"\[0, 3\)"),
                       ((np.array([1]), 3), "at least 2"), ((np.zeros((2, 2), int), 3), "1-D integer")):
        with pytest.raises(ValueError, match=match):
            fit_bigram(*bad)


# ----------------------------------------------------------------------------- the scripts

def test_char_rnn_budget_stop_then_resume_writes_the_documented_files(tmp_path):
    out = tmp_path / "lm"
    # a 0.06 s budget: the first (compiling) step spends it, so training stops at step 1 and records it
    first, proc = run("char_rnn.py", out, "--cell", "gru", "--steps", "8", "--minutes", "0.001",
                      "--sample-chars", "40")
    assert first["steps"] == 1 and first["stop_reason"] == "time_budget", proc.stdout[-2000:]
    assert "time budget spent at step 1" in proc.stdout
    second, proc = run("char_rnn.py", out, "--cell", "gru", "--steps", "4", "--resume", "--sample-chars", "40")
    assert FIELDS <= set(second) and second["experiment"] == "char_rnn" and second["dataset"] == "fortunes"
    assert second["steps"] == 4 and second["stop_reason"] == "done"
    assert "step 4/4" in proc.stdout and "step 1/" not in proc.stdout    # continued from step 1
    m, V = second["metrics"], second["vocab_size"]
    assert m["val_bits_per_char"] == pytest.approx(m["val_loss_nats_per_char"] / math.log(2), rel=1e-6)
    assert m["val_loss_nats_per_char"] < math.log(V) + 0.1  # near uniform (ln V) after 4 warm-up steps
    assert 2.0 < m["bigram_val_bits_per_char"] < math.log2(V)
    assert m["bits_per_char_below_bigram"] == pytest.approx(m["bigram_val_bits_per_char"] - m["val_bits_per_char"])
    assert m["train_minutes"] > 0 and m["val_characters"] == charlm.SMOKE_CHARS["validation"] - 1
    vals = [r for r in records(out) if r.get("split") == "val"]
    assert [r["step"] for r in vals] == [1, 4]                      # the budget stop's evaluation kept
    assert vals[1]["val_loss"] < vals[0]["val_loss"]                # the resumed steps 2-4 learned something
    assert vals[1]["val_train_s"] >= vals[0]["val_train_s"] > 0     # the training clock continues
    samples = (out / "samples.txt").read_text(encoding="utf-8", errors="surrogateescape")
    assert samples.startswith("char_rnn on fortunes after 4 steps")
    assert samples.count("=== temperature 0.7") == 3 and samples.count("=== temperature 1,") == 3
    assert os.path.getsize(out / "curves.png") > 1000 and (out / "checkpoints").is_dir()


def test_seq_classify_smoke(tmp_path):
    out = tmp_path / "seq"
    res, _ = run("seq_classify.py", out)
    assert FIELDS <= set(res) and res["experiment"] == "seq_classify" and res["steps"] == 6
    assert res["config"]["cell"] == "lstm" and res["config"]["hidden"] == 32
    assert 0.0 <= res["metrics"]["test_accuracy"] <= 1.0
    vals = [r for r in records(out) if r.get("split") == "val"]
    assert [r["step"] for r in vals] == [3, 6] and vals[1]["val_loss"] < vals[0]["val_loss"] < math.log(10)
    assert os.path.getsize(out / "curves.png") > 1000


@pytest.mark.parametrize("name,flags,message", [
    ("char_rnn.py", ["--minutes", "0"], "--minutes: expected a value > 0, got 0.0"),
    ("seq_classify.py", ["--hidden", "0"], "--hidden: expected a value >= 1, got 0"),
])
def test_bad_flag_is_one_line(tmp_path, name, flags, message):
    proc = script(name, "--smoke", "--out", str(tmp_path), *flags, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experiments/{name}: error: {message}")
