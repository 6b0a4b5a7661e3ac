"""experiments/finetune.py --hf-dir: fine-tuning from a local GPT-2-style directory (a tiny random GPT-2 saved
by transformers and a byte-level BPE tokenizer trained offline), bits/char checked against PyTorch."""
import json
import math
import os
import subprocess
import sys

import _compile_cache
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the reference extra) builds the reference model")
transformers = pytest.importorskip("transformers", reason="transformers (the reference extra) builds the model")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers (the finetune extra) reads tokenizer.json")
pytest.importorskip("safetensors", reason="safetensors (the finetune extra) reads the checkpoint")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "finetune.py")
SEQ = 16


def _text(n_lines: int) -> str:
    rng = np.random.default_rng(0)
    words = ["the", "licence", "software", "copy", "rights", "holder", "may", "not", "any", "work", "of", "this"]
    return "".join(" ".join(rng.choice(words, size=rng.integers(3, 9))).capitalize() + ".\n" for _ in range(n_lines))


@pytest.fixture(scope="session")
def gpt2_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt2")
    target = d / "target.txt"
    target.write_text(_text(900))
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([_text(300)], vocab_size=300, min_frequency=2, show_progress=False)
    model_dir = d / "model"
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    bpe.save(str(model_dir / "tokenizer.json"))
    out = d / "run"
    proc = subprocess.run([sys.executable, SCRIPT, "--hf-dir", str(model_dir), "--target", str(target), "--smoke",
                           "--out", str(out), "--seq-len", str(SEQ), "--batch-size", "8", "--rank", "2",
                           "--lora-on", "qkv", "--lr", "3e-3", "--lora-lr", "1e-2"],
                          capture_output=True, text=True, timeout=600, env=_compile_cache.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json")), target, out


def test_gpt2_dir_bits_per_char_match_torch(gpt2_run):
    """The untrained model's test bits/char = PyTorch's summed token nats over the same consecutive windows /
    the characters after the first token / ln 2."""
    from deepcore.data import load_text

    model, tok, target, out = gpt2_run
    text = load_text(str(target), "test")[:4000]   # --smoke keeps SMOKE_CHARS["validation"] of each split
    ids = tok.encode(text).ids
    nats = 0.0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, SEQ):
            x = torch.tensor(ids[s:s + SEQ][: len(ids) - 1 - s])[None]
            y = torch.tensor(ids[s + 1:s + 1 + x.shape[1]])
            nats += float(torch.nn.functional.cross_entropy(model(x).logits[0].double(), y, reduction="sum"))
    chars = len(text) - len(tok.decode(ids[:1]))
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert m["before_test_bits_per_char"] == pytest.approx(nats / chars / math.log(2), rel=1e-5)


def test_gpt2_dir_fine_tunes(gpt2_run):
    _, _, _, out = gpt2_run
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert m["lora_trainable_params"] == 2 * 2 * (32 + 96)   # 2 layers x rank 2 x (d_in + d_out) of qkv
    assert m["full_val_bits_per_char"] < m["before_val_bits_per_char"]
    assert m["lora_val_bits_per_char"] < m["before_val_bits_per_char"]
    assert abs(m["lora_unmerged_val_bits_per_char"] - m["lora_val_bits_per_char"]) < 1e-4
    assert m["lora_opt_state_bytes"] < m["full_opt_state_bytes"] / 5
    for phase in ("full", "lora"):
        assert (out / phase / "metrics.jsonl").exists()


def test_gpt2_dir_without_tokenizer_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    proc = subprocess.run([sys.executable, SCRIPT, "--hf-dir", str(tmp_path), "--smoke", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "tokenizer.json" in err[0], proc.stderr
