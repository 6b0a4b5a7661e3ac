"""Fine-tuning a character transformer on a new corpus: fully, and with low-rank adapters (LoRA).

    python experiments/finetune.py                     # pretrain on fortunes, fine-tune on the licence texts
    python experiments/finetune.py --smoke --out /tmp/finetune

1. Pretrain a char-level TransformerLM on --dataset (fortunes) for --pretrain-steps (checkpointed in
   OUT/pretrain; a rerun, or --pretrained PREVIOUS_OUT/pretrain, reuses it).
2. Fine-tune it on --target: by default the plain-text licences of /usr/share/common-licenses (GPL, Apache,
   MPL, ...: legal prose, a corpus unlike fortunes; concatenated into OUT/target.txt, split 90/5/5), with the
   pretraining vocabulary (unseen characters map to id 0):
   * full: every parameter trains (AdamW);
   * lora: deepcore.finetune.lora adapters of --rank on the projections --lora-on names (qkv, attention, all,
     or weight-path globs "*attn/out/w,embed/w"); only they train (the base weights hold no optimiser state).
   Both run --steps updates with the same batches, learning-rate schedule and seed.
Reports bits/char on the target's validation (and test) split before and after each, trainable parameters, step
time (median ms over the logged steps), optimiser-state bytes (results.json); logs and checkpoints per phase in
OUT/{pretrain,full,lora}. The LoRA defaults were chosen on validation (BUILD_NOTES); test is reported beside it.
"""
import glob
import json
import os
import shutil
import time

import common
import flagcheck
from charlm import EVAL_WINDOWS, SMOKE_CHARS

LICENCES = "/usr/share/common-licenses"
LORA_ON = {"qkv": "QKV", "attention": "ATTENTION", "all": "TRANSFORMER"}   # --lora-on: deepcore.finetune.lora.<name>


def target_file(args) -> str:
    """--target, or the licence texts concatenated into OUT/target.txt (each file once, symlinks skipped)."""
    if args.target != "licenses":
        return args.target
    files = sorted(f for f in glob.glob(os.path.join(LICENCES, "*")) if os.path.isfile(f) and not os.path.islink(f))
    if not files:
        raise common.UsageError(f"--target licenses: no files in {LICENCES}; give --target path/to/text.txt")
    path = os.path.join(args.out, "target.txt")
    with open(path, "wb") as out:
        for f in files:
            out.write(open(f, "rb").read().rstrip(b"\n") + b"\n\n")
    return path


def parser():
    p = common.parser("finetune", __doc__.splitlines()[0], dataset="fortunes", batch_size=32, lr=1e-3, steps=400)
    p.add_argument("--target", default="licenses", help="fine-tuning corpus: 'licenses' or a text file path")
    p.add_argument("--pretrain-steps", type=int, default=1500, help="pretraining updates on --dataset")
    p.add_argument("--pretrain-lr", type=float, default=2e-3, help="pretraining peak learning rate")
    p.add_argument("--seq-len", type=int, default=128, help="characters per window")
    p.add_argument("--d-model", type=int, default=128, help="residual stream width")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank")
    p.add_argument("--lora-scale", type=float, default=2.0, help="LoRA scale (alpha / rank)")
    p.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA adapter dropout")
    p.add_argument("--lora-lr", type=float, default=2e-2, help="LoRA peak learning rate (adapters start at zero)")
    p.add_argument("--lora-on", default="qkv", help="adapted weights: qkv, attention (qkv and out), all (every "
                   "block projection) or comma-separated weight-path globs")
    p.add_argument("--pretrained", default=None, help="a previous run's OUT/pretrain, copied in: skips pretraining")
    p.add_argument("--hf-dir", default=None, help="fine-tune a local GPT-2-style directory: finetune_gpt2.py")
    p.add_argument("--eval-every", type=int, default=100, help="steps between evaluations and checkpoints")
    flagcheck.at_least(p, 1, "--pretrain-steps", "--d-model", "--layers", "--heads", "--rank", "--eval-every")
    flagcheck.at_least(p, 2, "--seq-len")
    flagcheck.rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    flagcheck.rate(p, "--lora-dropout")
    return p


def lora_config(args):
    """The LoRAConfig of --rank, --lora-scale, --lora-dropout on the weights --lora-on names."""
    from deepcore.finetune import lora

    pats = getattr(lora, LORA_ON[args.lora_on]) if args.lora_on in LORA_ON else tuple(args.lora_on.split(","))
    return lora.LoRAConfig(pats, rank=args.rank, scale=args.lora_scale, dropout=args.lora_dropout)


def corpora(args):
    """``(source corpus, target path, {split: target ids in its vocabulary})`` (--smoke: ``SMOKE_CHARS`` of each)."""
    from deepcore.data import encode, load_corpus, load_text

    source = load_corpus(args.dataset, args.data_dir, max_chars=SMOKE_CHARS if args.smoke else None)
    tpath = target_file(args)
    tgt = {s: encode(source.vocab, load_text(tpath, s)) for s in ("train", "validation", "test")}
    if args.smoke:
        tgt = {s: ids[:SMOKE_CHARS.get(s, SMOKE_CHARS["validation"])] for s, ids in tgt.items()}
    return source, tpath, tgt


def optimizer(lr, steps):
    """Clipping at 1, then AdamW (b2 0.99) with a warm-up (a tenth, at most 100 steps) and cosine decay."""
    import optax

    sched = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, min(100, steps // 10)), max(2, steps))
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, b2=0.99, weight_decay=0.0))


def eval_step(model):
    """The compiled validation metrics (``window_nll``) of ``model`` on one window batch."""
    from deepcore.data import window_nll
    from deepcore.train import compile_fn

    def metrics(state, batch):
        logits, _ = model.apply(state.params, state.model_state, batch["inputs"], train=False)
        return window_nll(logits, batch["targets"], batch["weight"])
    return compile_fn(metrics)


def phase(args, name, model, params, tx, ids, val, steps, cdt):
    """Train ``params`` for ``steps``; returns (state, bits/char on ``val``, median step ms, opt bytes)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from deepcore.data import lm_windows
    from deepcore.train import classifier_loss, create_state, evaluate, fit, train_step

    params = jax.tree.map(jnp.copy, params)   # the step donates its state; the caller's params stay valid
    state = create_state(params, {}, tx, jax.random.PRNGKey(args.seed + 1))
    step = train_step(classifier_loss(model, x="inputs", y="targets"), tx, compute_dtype=cdt, grad_norm=False)
    pipe = lm_windows(ids, args.seq_len, args.batch_size, args.seed, mode="random")
    ev = eval_step(model)
    res = fit(step, state, pipe.batches, steps=steps, eval_step=ev, eval_batches=lambda: val,
              eval_every=args.eval_every, out_dir=os.path.join(args.out, name), checkpoint_every=args.eval_every,
              resume=True, log_every=max(1, min(50, args.eval_every)))
    if res.stop_reason == "nonfinite":
        raise common.UsageError(res.message)
    rates = [r["examples_per_s"] for r in res.history if "examples_per_s" in r]
    step_ms = float(np.median([args.batch_size / r * 1e3 for r in rates])) if rates else None
    opt_bytes = sum(a.nbytes for a in jax.tree.leaves(res.state.opt_state))
    return res.state, evaluate(ev, res.state, val)["val_bits_per_char"], step_ms, opt_bytes


def main(args):
    import jax
    import jax.numpy as jnp
    from deepcore.data import eval_windows
    from deepcore.finetune import lora
    from deepcore.models.transformer import LMConfig, TransformerLM
    from deepcore.train import evaluate
    from deepcore.tree import param_count

    t0 = time.perf_counter()
    if args.devices != 1:
        raise common.UsageError(f"--devices: finetune.py runs on one device, got {args.devices}")
    if args.hf_dir:
        return __import__("finetune_gpt2").main(args)   # the same from a GPT-2-style directory
    if args.smoke:
        args.pretrain_steps, args.steps, args.eval_every = min(args.pretrain_steps, 8), min(args.steps, 8), 4
        args.d_model, args.layers, args.heads, args.seq_len = 32, 2, 2, min(args.seq_len, 64)
    os.makedirs(args.out, exist_ok=True)
    if args.pretrained and not os.path.exists(os.path.join(args.out, "pretrain")):
        shutil.copytree(args.pretrained, os.path.join(args.out, "pretrain"), ignore=shutil.ignore_patterns("run.lock"))
    source, tpath, tgt = corpora(args)
    cfg = LMConfig(vocab_size=source.vocab.size, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                   max_len=args.seq_len)
    base = TransformerLM(cfg)
    cdt = None if args.precision == "float32" else jnp.bfloat16
    spec = jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32)

    vb = lambda ids: eval_windows(ids, args.seq_len, EVAL_WINDOWS)  # noqa: E731
    src_val, tgt_val, tgt_test = vb(source.validation), vb(tgt["validation"]), vb(tgt["test"])
    params0 = base.init(jax.random.PRNGKey(args.seed), spec)[1]
    print(f"finetune: transformer {args.layers} x d{args.d_model}, {param_count(params0):,} parameters; pretrain on "
          f"{args.dataset} ({len(source.train):,} chars), tune on {tpath} ({len(tgt['train']):,} chars)", flush=True)
    pre, pre_src_bpc, _, _ = phase(args, "pretrain", base, params0, optimizer(args.pretrain_lr, args.pretrain_steps),
                                   source.train, src_val, args.pretrain_steps, cdt)
    before = evaluate(eval_step(base), pre, tgt_val)["val_bits_per_char"]
    full, full_bpc, full_ms, full_opt = phase(args, "full", base, pre.params, optimizer(args.lr, args.steps),
                                              tgt["train"], tgt_val, args.steps, cdt)
    lcfg = lora_config(args)
    tree = lora.attach(pre.params, jax.random.PRNGKey(args.seed + 2), lcfg)
    ad, lora_bpc, lora_ms, lora_opt = phase(args, "lora", lora.LoRA(base, lcfg), tree,
                                            lora.optimizer(optimizer(args.lora_lr, args.steps)), tgt["train"],
                                            tgt_val, args.steps, cdt)
    merged = pre.replace(params=lora.merge(ad.params, lcfg))
    merged_bpc = evaluate(eval_step(base), merged, tgt_val)["val_bits_per_char"]
    test = {k: evaluate(eval_step(base), s, tgt_test)["val_bits_per_char"] for k, s in
            (("before", pre), ("full", full), ("lora", merged))}   # reported; defaults were chosen on validation
    n_base, n_lora = param_count(pre.params), param_count(ad.params["lora"])
    metrics = {"pretrain_val_bits_per_char": pre_src_bpc, "target_val_bits_per_char_before": before,
               "full_val_bits_per_char": full_bpc, "lora_val_bits_per_char": lora_bpc,
               "lora_merged_val_bits_per_char": merged_bpc, "lora_minus_full_bits_per_char": lora_bpc - full_bpc,
               "full_trainable_params": n_base, "lora_trainable_params": n_lora,
               "lora_trainable_fraction": n_lora / n_base, "full_step_ms": full_ms, "lora_step_ms": lora_ms,
               "full_opt_state_bytes": full_opt, "lora_opt_state_bytes": lora_opt,
               **{f"{k}_test_bits_per_char": v for k, v in test.items()},
               "lora_minus_full_test_bits_per_char": test["lora"] - test["full"]}
    res = common.write_results(args, dataset=f"{args.dataset} -> {tpath}", metrics=metrics,
                               wall_s=time.perf_counter() - t0, steps=args.steps,
                               train_examples_per_s=args.batch_size / full_ms * 1e3 if full_ms else None)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
