"""Import a local Hugging Face model directory into deepcore's own models (deepcore never downloads).

A directory holds ``config.json`` and ``model.safetensors`` (read lazily) or a PyTorch ``pytorch_model.bin``
(read whole with ``torch.load``). Two architectures, chosen by ``config["model_type"]``:

* ``gpt2`` -> :class:`~deepcore.models.transformer.TransformerLM` (learned positions, tanh GELU, tied
  embeddings, biases, ``layer_norm_epsilon``). Names, with or without the ``transformer.`` prefix::

      wte.weight -> embed/w                wpe.weight -> positions/table        ln_f.{weight,bias} -> ln_f/{scale,bias}
      h.i.ln_1 -> blocks/i/ln_attn         h.i.attn.c_attn -> blocks/i/attn/qkv     h.i.attn.c_proj -> .../attn/out
      h.i.ln_2 -> blocks/i/ln_mlp          h.i.mlp.c_fc -> blocks/i/mlp/fc          h.i.mlp.c_proj -> .../mlp/proj

  (GPT-2's ``Conv1D`` weights are already ``(in, out)``; ``lm_head.weight`` is the tied ``wte``.)
* ``vit`` (``ViTForImageClassification``) -> :func:`~deepcore.models.vit.ViT` (images ``(..., H, W, C)``; a
  PyTorch ViT takes ``(N, C, H, W)``)::

      vit.embeddings.patch_embeddings.projection -> patch (the (D, C, p, p) kernel as (p*p*C, D))
      vit.embeddings.cls_token -> cls      vit.embeddings.position_embeddings -> positions/table
      vit.encoder.layer.i.layernorm_before -> blocks/i/ln_attn
      ...attention.attention.{query,key,value} -> blocks/i/attn/qkv (transposed, concatenated q|k|v)
      ...attention.output.dense -> attn/out   ...layernorm_after -> ln_mlp
      ...intermediate.dense -> mlp/fc          ...output.dense -> mlp/proj
      vit.layernorm -> ln_f                    classifier -> head

With ``scan=True`` (the default) the per-layer tensors are stacked on a leading layer axis. ``shardings`` (one
``Sharding`` or a tree matching the params, e.g. ``deepcore.train.parallel.state_sharding``) places each leaf on
its devices as soon as it is read, one leaf in host memory at a time. Unknown architectures and missing, extra or
misshapen tensors are one line naming the tensor. :func:`tokenizer` reads the directory's ``tokenizer.json``.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.finetune.export import check_names, place
from deepcore.tree import leaf_paths

IGNORED = (".attn.bias", ".attn.masked_bias")   # GPT-2's causal-mask buffers in older state dicts


class Checkpoint:
    """A model directory's ``config`` and its tensors by name, read on demand."""

    def __init__(self, directory: str):
        self.directory = directory
        cfg = os.path.join(directory, "config.json")
        if not os.path.exists(cfg):
            raise FileNotFoundError(f"hf: no config.json in {directory!r}")
        with open(cfg) as f:
            self.config = json.load(f)
        st, pt = os.path.join(directory, "model.safetensors"), os.path.join(directory, "pytorch_model.bin")
        if os.path.exists(st):
            from safetensors import safe_open
            self.path, self._file = st, safe_open(st, framework="numpy")
            self.shapes = {n: tuple(self._file.get_slice(n).get_shape()) for n in self._file.keys()}
            self._get = self._file.get_tensor
        elif os.path.exists(pt):
            import torch
            sd = torch.load(pt, map_location="cpu", weights_only=True)
            self.path, self.shapes = pt, {n: tuple(t.shape) for n, t in sd.items()}
            self._get = lambda n: sd[n].float().numpy() if sd[n].dtype == torch.bfloat16 else sd[n].numpy()
        else:
            raise FileNotFoundError(f"hf: neither model.safetensors nor pytorch_model.bin in {directory!r}")

    def get(self, name: str) -> np.ndarray:
        return self._get(name)


def _t(a):
    return a[0].T


def _one(a):
    return a[0]


def _linear(pre, d_in, d_out, torch_layout=True):
    """``{w, b}`` of one dense projection from ``pre.weight`` / ``pre.bias``."""
    shape = (d_out, d_in) if torch_layout else (d_in, d_out)
    return {"w": ([(pre + ".weight", shape)], _t if torch_layout else _one), "b": ([(pre + ".bias", (d_out,))], _one)}


def _norm(pre, d):
    return {"scale": ([(pre + ".weight", (d,))], _one), "bias": ([(pre + ".bias", (d,))], _one)}


def _flat(tree, prefix=""):
    """Nested plan dicts -> ``{"a/b": (names, combine)}``."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = v
    return out


def _scanned(plan: dict, num_layers: int) -> dict:
    """Per-layer ``blocks/i/...`` entries -> one ``blocks/...`` entry stacking the layers."""
    out = {k: v for k, v in plan.items() if not k.startswith("blocks/")}
    for rest in {k.split("/", 2)[2] for k in plan if k.startswith("blocks/")}:
        per = [plan[f"blocks/{i}/{rest}"] for i in range(num_layers)]

        def combine(arrays, per=per):
            parts, j = [], 0
            for names, f in per:
                parts.append(f(arrays[j:j + len(names)]))
                j += len(names)
            return np.stack(parts)

        out["blocks/" + rest] = ([n for names, _ in per for n in names], combine)
    return out


def _gpt2(c):
    from deepcore.models.transformer import LMConfig

    d, n_layers = c["n_embd"], c["n_layer"]
    hidden = c.get("n_inner") or 4 * d
    act = c.get("activation_function", "gelu_new")
    problems = ([f"activation_function {act!r} (expected gelu_new or gelu)"] if act not in ("gelu_new", "gelu") else [])
    problems += [f"n_inner {hidden} (expected a multiple of n_embd {d})"] if hidden % d else []
    problems += [f"{k}=True (not supported)" for k in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")
                 if c.get(k)]
    problems += ["tie_word_embeddings=False (not supported)"] if not c.get("tie_word_embeddings", True) else []
    if problems:
        raise ValueError(f"hf: gpt2 config: {problems[0]}")
    cfg = LMConfig(vocab_size=c["vocab_size"], d_model=d, num_layers=n_layers, num_heads=c["n_head"],
                   max_len=c["n_positions"], positions="learned", tie_embeddings=True, use_bias=True,
                   approximate_gelu=act == "gelu_new", epsilon=c.get("layer_norm_epsilon", 1e-5),
                   mlp_ratio=hidden // d)
    plan = {"embed": {"w": ([("wte.weight", (c["vocab_size"], d))], _one)},
            "positions": {"table": ([("wpe.weight", (c["n_positions"], d))], _one)},
            "ln_f": _norm("ln_f", d), "blocks": {}}
    for i in range(n_layers):
        p = f"h.{i}."
        plan["blocks"][str(i)] = {
            "ln_attn": _norm(p + "ln_1", d), "ln_mlp": _norm(p + "ln_2", d),
            "attn": {"qkv": _linear(p + "attn.c_attn", d, 3 * d, False),
                     "out": _linear(p + "attn.c_proj", d, d, False)},
            "mlp": {"fc": _linear(p + "mlp.c_fc", d, hidden, False),
                    "proj": _linear(p + "mlp.c_proj", hidden, d, False)}}
    return cfg, plan


def _vit(c):
    d, n_layers, heads = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    hidden, p, ch, size = c["intermediate_size"], c["patch_size"], c.get("num_channels", 3), c["image_size"]
    act = c.get("hidden_act", "gelu")
    labels = len(c.get("id2label") or {}) or c.get("num_labels", 2)
    if act not in ("gelu", "gelu_new") or hidden % d or not c.get("qkv_bias", True):
        raise ValueError(f"hf: vit config: hidden_act {act!r}, intermediate_size {hidden}, qkv_bias "
                         f"{c.get('qkv_bias', True)} (supported: gelu or gelu_new, a multiple of hidden_size {d}, "
                         f"True)")
    n = (size // p) ** 2 + 1
    options = dict(patch_size=p, d_model=d, num_layers=n_layers, num_heads=heads, pool="cls",
                   mlp_ratio=hidden // d, approximate_gelu=act == "gelu_new", epsilon=c.get("layer_norm_eps", 1e-12))
    e = "vit.embeddings."

    def patch(a):
        return a[0].transpose(2, 3, 1, 0).reshape(p * p * ch, d)

    def qkv_w(a):
        return np.concatenate([x.T for x in a], axis=1)

    plan = {"patch": {"w": ([(e + "patch_embeddings.projection.weight", (d, ch, p, p))], patch),
                      "b": ([(e + "patch_embeddings.projection.bias", (d,))], _one)},
            "cls": ([(e + "cls_token", (1, 1, d))], lambda a: a[0].reshape(1, d)),
            "positions": {"table": ([(e + "position_embeddings", (1, n, d))], lambda a: a[0].reshape(n, d))},
            "ln_f": _norm("vit.layernorm", d), "head": _linear("classifier", d, labels), "blocks": {}}
    for i in range(n_layers):
        q = f"vit.encoder.layer.{i}."
        a = q + "attention.attention."
        plan["blocks"][str(i)] = {
            "ln_attn": _norm(q + "layernorm_before", d), "ln_mlp": _norm(q + "layernorm_after", d),
            "attn": {"qkv": {"w": ([(a + k + ".weight", (d, d)) for k in ("query", "key", "value")], qkv_w),
                             "b": ([(a + k + ".bias", (d,)) for k in ("query", "key", "value")], np.concatenate)},
                     "out": _linear(q + "attention.output.dense", d, d)},
            "mlp": {"fc": _linear(q + "intermediate.dense", d, hidden), "proj": _linear(q + "output.dense", hidden, d)}}
    return (options, labels, (size, size, ch)), plan


ARCHITECTURES = {"gpt2": _gpt2, "vit": _vit}


def _assemble(ck: Checkpoint, plan: dict, like, shardings, prefix: str = ""):
    names = {}
    for n, shape in ck.shapes.items():
        if not n.endswith(IGNORED):
            names[n[len(prefix):] if prefix and n.startswith(prefix) else n] = shape
    if "lm_head.weight" in names and "wte.weight" in names:   # the tied head, stored twice by some savers
        del names["lm_head.weight"]
    want = {n: s for entry in plan.values() for n, s in entry[0]}
    check_names(names, want, ck.path)
    full = {n[len(prefix):] if prefix and n.startswith(prefix) else n: n for n in ck.shapes}
    paths, leaves = leaf_paths(like), jax.tree.leaves(like)
    shards = ([shardings] * len(leaves) if shardings is None or isinstance(shardings, jax.sharding.Sharding)
              else jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding)))
    out = []
    for path, leaf, s in zip(paths, leaves, shards):
        entry_names, combine = plan[path]
        host = np.asarray(combine([ck.get(full[n]) for n, _ in entry_names]))
        out.append(place(lambda idx, h=host: h if idx is None else h[idx], leaf.shape, leaf.dtype, s))
    return jax.tree.unflatten(jax.tree.structure(like), out)


def load(directory: str, *, scan: bool = True, dtype=jnp.float32, shardings=None):
    """``(model, params)`` from a local Hugging Face directory: a ``TransformerLM`` (gpt2) or a ``ViT`` (vit)
    layer and its parameters in ``dtype``; ``shardings`` as in the module doc (a function ``like -> shardings``
    is called with the abstract params)."""
    from deepcore.models.transformer import TransformerLM, lm_init
    from deepcore.models.vit import ViT

    ck = Checkpoint(directory)
    kind = ck.config.get("model_type")
    if kind not in ARCHITECTURES:
        raise ValueError(f"hf: unknown architecture {kind!r} ({ck.config.get('architectures')}) in "
                         f"{directory}/config.json; known: {sorted(ARCHITECTURES)}")
    made, plan = ARCHITECTURES[kind](ck.config)
    if kind == "gpt2":
        cfg = made.replace(scan=scan)
        model, prefix = TransformerLM(cfg), "transformer." if "transformer.wte.weight" in ck.shapes else ""
        like = jax.eval_shape(lambda: lm_init(cfg, jax.random.PRNGKey(0), dtype))
    else:
        options, labels, image = made
        model, prefix = ViT(labels, scan=scan, **options), ""
        like = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1,) + image, dtype))[1])
    plan = _flat(plan)
    if scan:
        plan = _scanned(plan, len({k.split("/")[1] for k in plan if k.startswith("blocks/")}))
    if callable(shardings):
        shardings = shardings(like)
    return model, _assemble(ck, plan, like, shardings, prefix)


def tokenizer(directory: str):
    """The directory's ``tokenizer.json`` as a ``tokenizers.Tokenizer`` (the ``tokenizers`` package, imported
    here: the ``finetune`` extra). A missing package or file is one line (``ImportError`` / ``FileNotFoundError``)."""
    path = os.path.join(directory, "tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(f"hf.tokenizer: reading {path} needs the tokenizers package "
                          f"(pip install 'deepcore[finetune]')") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"hf.tokenizer: expected {path} (a Hugging Face fast tokenizer), found none")
    return Tokenizer.from_file(path)


__all__ = ["Checkpoint", "load", "tokenizer", "ARCHITECTURES", "IGNORED"]
