"""experiments/char_transformer.py and vit.py: smoke runs write the documented files, one-line errors for bad
flags, and the sliding-window sampler of char_transformer.py equals decoding each window from scratch."""
import math
import os

import numpy as np
import pytest

from _scripts import FIELDS, records, run, script  # also puts experiments/ on sys.path


def test_sliding_generate_equals_greedy_decoding_of_each_window():
    """Greedy: each new token is the argmax of the model run (no cache) on the window it was drawn in: the
    chunk's prompt (the newest max_len // 2 tokens) plus the chunk's tokens so far."""
    import jax
    import jax.numpy as jnp

    import char_transformer
    from deepcore.models.transformer import LMConfig, lm_apply, lm_init

    cfg = LMConfig(vocab_size=11, d_model=16, num_layers=1, num_heads=2, max_len=8)
    raw = lm_init(cfg, jax.random.PRNGKey(3))
    params = jax.tree.map(lambda a: a * 8.0 if a.ndim == 2 else a, raw)   # sharper logits: no near-ties
    prompt = np.array([[1, 4], [7, 2]], np.int32)
    got = np.asarray(char_transformer.sliding_generate(cfg, params, prompt, 15, jax.random.PRNGKey(0), 0.0))
    assert got.shape == (2, 15)

    @jax.jit
    def last_logits(window, n):   # causal: the padding after position n - 1 changes nothing before it
        return jax.vmap(lambda row: lm_apply(cfg, params, row)[0][n - 1])(window)

    seq, ctx, want = prompt, prompt, []           # chunks: 6 tokens (from the 2-token prompt), then 4, 4, 4
    while len(want) < 15:
        for _ in range(cfg.max_len - ctx.shape[1]):
            window = np.zeros((2, cfg.max_len), np.int32)
            window[:, :ctx.shape[1]] = ctx
            tok = np.asarray(jnp.argmax(last_logits(window, ctx.shape[1]), -1), np.int32)[:, None]
            ctx, seq = np.concatenate([ctx, tok], 1), np.concatenate([seq, tok], 1)
            want.append(tok[:, 0])
        ctx = seq[:, -(cfg.max_len // 2):]
    np.testing.assert_array_equal(got, np.stack(want[:15], 1))
    sampled = [np.asarray(char_transformer.sliding_generate(cfg, raw, prompt, 6, jax.random.PRNGKey(s), 1.0,
                                                            top_k=3)) for s in (0, 0, 1)]
    np.testing.assert_array_equal(sampled[0], sampled[1])                 # seeded
    assert not np.array_equal(sampled[0], sampled[2])


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
])
def test_bad_flag_is_one_line(tmp_path, name, flags, message):
    proc = script(name, "--out", str(tmp_path), *flags, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experiments/{name}: error: {message}")
