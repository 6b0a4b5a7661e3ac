"""``experiments/finetune.py --hf-dir DIR``: the same full and LoRA fine-tuning, from a local GPT-2-style directory.

    python experiments/finetune.py --hf-dir path/to/gpt2 --out runs/finetune_gpt2 --seq-len 256 --batch-size 8

The directory's model (:func:`deepcore.finetune.hf.load`: ``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) replaces the pretrained character model, and its ``tokenizer.json`` (read with the
``tokenizers`` package, the ``finetune`` extra) the character vocabulary. Each split of --target is tokenized
whole. Bits per character = the total negative log-likelihood of the predicted tokens (nats) / the characters
they cover / ln 2 (every token but a split's first is predicted), so the figure is in the character model's unit.
Reports it on validation and test before and after full fine-tuning and LoRA, with trainable parameters, step
time and optimiser memory, as the character recipe does.
"""
import os
import time

import common
from charlm import EVAL_WINDOWS, SMOKE_CHARS


def encode_split(tok, text: str):
    """``(ids int32 (M,), characters)``: ``text`` tokenized, and the characters covered by tokens 2..M (the
    first token is context only)."""
    import numpy as np

    enc = tok.encode(text)
    if len(enc.ids) < 2:
        raise common.UsageError(f"--hf-dir: a --target split tokenized to {len(enc.ids)} tokens; expected at least 2")
    return np.asarray(enc.ids, np.int32), len(text) - enc.offsets[0][1]


def corpus(args, tok):
    """``{split: (ids, characters)}`` for train, validation and test of --target (--smoke: the first
    ``SMOKE_CHARS`` characters of each)."""
    from deepcore.data import load_text
    from finetune import target_file

    tpath = target_file(args)
    out = {}
    for s in ("train", "validation", "test"):
        text = load_text(tpath, s)
        out[s] = encode_split(tok, text[:SMOKE_CHARS.get(s, SMOKE_CHARS["validation"])] if args.smoke else text)
    return tpath, out


def main(args):
    """Load --hf-dir, fine-tune it fully and with LoRA on --target; write results.json."""
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore.data import eval_windows
    from deepcore.finetune import hf, lora
    from deepcore.train import create_state, evaluate
    from deepcore.tree import param_count
    from finetune import eval_step, lora_config, optimizer, phase

    t0 = time.perf_counter()
    if args.smoke:
        args.steps, args.eval_every = min(args.steps, 8), 4
    os.makedirs(args.out, exist_ok=True)
    try:
        tok = hf.tokenizer(args.hf_dir)
        model, params = hf.load(args.hf_dir, dtype=jnp.float32)
    except (ImportError, FileNotFoundError, ValueError) as e:
        raise common.UsageError(f"--hf-dir: {e}") from None
    max_len = params["positions"]["table"].shape[0]
    if args.seq_len > max_len:
        raise common.UsageError(f"--seq-len: at most the model's {max_len} positions, got {args.seq_len}")
    tpath, data = corpus(args, tok)
    cdt = None if args.precision == "float32" else jnp.bfloat16
    windows = {s: eval_windows(ids, args.seq_len, EVAL_WINDOWS) for s, (ids, _) in data.items() if s != "train"}
    # evaluate() gives the mean bits per predicted token; times tokens / characters = bits per character
    per_char = {s: (len(data[s][0]) - 1) / data[s][1] for s in windows}

    def bpc(m, state, split):
        return evaluate(eval_step(m), state, windows[split])["val_bits_per_char"] * per_char[split]

    print(f"finetune: {args.hf_dir}: {param_count(params):,} parameters, vocabulary {tok.get_vocab_size():,}; "
          f"fine-tune on {tpath} ({data['train'][1]:,} characters, {len(data['train'][0]):,} tokens)", flush=True)
    pre = create_state(params, {}, optax.identity(), jax.random.PRNGKey(args.seed))
    full = phase(args, "full", model, params, optimizer(args.lr, args.steps), data["train"][0],
                 windows["validation"], args.steps, cdt)
    lcfg = lora_config(args)
    tree = lora.attach(params, jax.random.PRNGKey(args.seed + 2), lcfg)
    ad = phase(args, "lora", lora.LoRA(model, lcfg), tree, lora.optimizer(optimizer(args.lora_lr, args.steps)),
               data["train"][0], windows["validation"], args.steps, cdt)
    merged = pre.replace(params=lora.merge(ad[0].params, lcfg))
    m = {}
    for split in ("validation", "test"):
        key = "val" if split == "validation" else "test"
        m[f"before_{key}_bits_per_char"] = bpc(model, pre, split)
        m[f"full_{key}_bits_per_char"] = bpc(model, full[0], split)
        m[f"lora_{key}_bits_per_char"] = bpc(model, merged, split)
        m[f"lora_minus_full_{key}_bits_per_char"] = m[f"lora_{key}_bits_per_char"] - m[f"full_{key}_bits_per_char"]
    m["lora_unmerged_val_bits_per_char"] = ad[1] * per_char["validation"]
    n_base, n_lora = param_count(params), param_count(ad[0].params["lora"])
    m.update(full_trainable_params=n_base, lora_trainable_params=n_lora, lora_trainable_fraction=n_lora / n_base,
             full_step_ms=full[2], lora_step_ms=ad[2], full_opt_state_bytes=full[3], lora_opt_state_bytes=ad[3],
             tokens_per_char_validation=per_char["validation"])
    res = common.write_results(args, dataset=f"{args.hf_dir} -> {tpath}", metrics=m, steps=args.steps,
                               wall_s=time.perf_counter() - t0,
                               train_examples_per_s=args.batch_size / full[2] * 1e3 if full[2] else None)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()})
    return res
