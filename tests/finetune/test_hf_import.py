"""Hugging Face import: small randomly initialised reference models (built offline with transformers) give the
same logits in deepcore to 1e-5 (float32); mismatches are one line naming the tensor."""
import json
import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the reference extra) builds the reference models")
transformers = pytest.importorskip("transformers", reason="transformers (the reference extra) builds the reference models")
pytest.importorskip("safetensors", reason="safetensors (finetune extra) reads the checkpoints")

from deepcore.finetune import hf  # noqa: E402


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():   # non-trivial layer norms and biases (they start at 1 and 0)
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or name.startswith("transformer.ln_f"):
                p.add_(0.1 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(d)
    return d, model


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory):
    torch.manual_seed(1)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64, num_labels=5,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.ViTForImageClassification(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("vit")
    model.save_pretrained(d)
    return d, model


@pytest.mark.parametrize("scan", [True, False])
def test_gpt2_logits_equal_the_reference(gpt2_dir, scan):
    d, ref = gpt2_dir
    tokens = np.random.default_rng(0).integers(0, 50, (2, 16))
    with torch.no_grad():
        want = ref(torch.tensor(tokens)).logits.numpy()
    model, params = hf.load(str(d), scan=scan)
    got = model.apply(params, {}, tokens.astype(np.int32))[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(want).max() > 0.1


@pytest.mark.parametrize("scan", [True, False])
def test_vit_logits_equal_the_reference(vit_dir, scan):
    d, ref = vit_dir
    images = np.random.default_rng(1).normal(size=(3, 3, 8, 8)).astype(np.float32)   # PyTorch: (N, C, H, W)
    with torch.no_grad():
        want = ref(pixel_values=torch.tensor(images)).logits.numpy()
    model, params = hf.load(str(d), scan=scan)
    got = model.apply(params, {}, images.transpose(0, 2, 3, 1))[0]                 # deepcore: (N, H, W, C)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_a_pytorch_state_dict_loads_like_safetensors(gpt2_dir, tmp_path):
    d, ref = gpt2_dir
    (tmp_path / "config.json").write_text((d / "config.json").read_text())
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")   # with the tied lm_head and mask buffers
    _, a = hf.load(str(tmp_path))
    _, b = hf.load(str(d))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_import_onto_a_sharding(gpt2_dir):
    from jax.sharding import NamedSharding, PartitionSpec

    d, _ = gpt2_dir
    s = NamedSharding(jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",)), PartitionSpec())
    _, params = hf.load(str(d), shardings=s)
    assert all(a.sharding == s for a in jax.tree.leaves(params))


def _edited(src, tmp_path, config=None, tensors=None):
    from safetensors.numpy import load_file, save_file

    c = json.loads((src / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(c, **(config or {}))))
    t = load_file(str(src / "model.safetensors"))
    save_file(tensors(t) if tensors else t, str(tmp_path / "model.safetensors"))
    return str(tmp_path)


def test_mismatches_are_one_line_naming_the_tensor(gpt2_dir, tmp_path):
    d, _ = gpt2_dir
    with pytest.raises(ValueError, match=r"^hf: unknown architecture 'bert' .* known: \['gpt2', 'vit'\]$"):
        hf.load(_edited(d, tmp_path, config={"model_type": "bert"}))
    drop = lambda t: {k: v for k, v in t.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    with pytest.raises(ValueError, match=r"missing tensor 'h.1.mlp.c_fc.bias' \(shape \(128,\)\)$"):
        hf.load(_edited(d, tmp_path, tensors=drop))
    with pytest.raises(ValueError, match=r"unexpected tensor 'h.0.extra' \(shape \(2,\)\)$"):
        hf.load(_edited(d, tmp_path, tensors=lambda t: dict(t, **{"transformer.h.0.extra": np.zeros(2, np.float32)})))
    bad = lambda t: dict(t, **{"transformer.h.0.attn.c_proj.weight": np.zeros((32, 31), np.float32)})
    with pytest.raises(ValueError,
                       match=r"tensor 'h.0.attn.c_proj.weight': expected shape \(32, 32\), got \(32, 31\)$"):
        hf.load(_edited(d, tmp_path, tensors=bad))
    assert os.path.exists(tmp_path / "model.safetensors")
