"""A character-level decoder-only transformer language model on the fortunes corpus.

    python experiments/char_transformer.py         # the BUILD_NOTES.md run: validation bits/char after 10
                                                   # minutes of training, next to char_rnn.py's LSTM
    python experiments/char_transformer.py --dataset tiny_shakespeare   # or --dataset path/to/any.txt
    python experiments/char_transformer.py --smoke --out /tmp/char_transformer

Model: a GPT (deepcore.models.transformer.TransformerLM): token embedding + learned positions (or
--positions rope / sinusoidal), 2 pre-LayerNorm blocks of width 128 with 4 heads and a 4x GELU MLP (0.44M
parameters), scanned over layers, a final LayerNorm and an untied dense head; batches of 32 x 128. Two blocks,
not four: under a 10-minute CPU budget the 2-block model takes twice the steps and ends lower (BUILD_NOTES.md:
2.235 vs 2.358 bits/char), though per step the 4-block one learns more. Training, corpus, split and
evaluation are char_rnn.py's: random windows of --seq-len characters, AdamW(b2 0.99) with
gradient clipping, linear warm-up and a cosine decay over the --minutes budget (deepcore.train.budget);
val_loss_nats_per_char and val_bits_per_char over the whole validation split (deepcore.data.corpus), the
bigram baseline on the same characters.
samples.txt is drawn with the KV-cache decoder (deepcore.models.sliding; --temperatures, --top-k, seeded):
a sample longer than the context slides its window by half a context and refills the cache from the kept
half, so every character sees between seq_len/2 and seq_len earlier ones, as in training.
Writes results.json, metrics.jsonl, checkpoints (--resume), samples.txt and curves.png.
"""
import json
import time

import common
import flagcheck

SMOKE_CHARS = {"train": 50_000, "validation": 4_000}
SMOKE_STEPS = 8
EVAL_WINDOWS = 128     # windows per evaluation batch
MINUTES = 10.0         # the time budget when neither --steps nor --epochs is given


def lm_config(vocab_size, args):
    from deepcore.models.transformer import LMConfig

    return LMConfig(vocab_size=vocab_size, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                    max_len=args.seq_len, positions=args.positions, dropout=args.dropout, mlp_ratio=args.mlp_ratio)


def parser():
    p = common.parser("char_transformer", __doc__.splitlines()[0], dataset="fortunes", batch_size=32, lr=2e-3)
    p.add_argument("--seq-len", type=int, default=128, help="characters per training and validation window")
    p.add_argument("--minutes", type=float, default=None,
                   help=f"training-time budget, evaluations excluded (default: {MINUTES:g} when neither --steps "
                        f"nor --epochs is given; with them, an extra cap)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between evaluations and checkpoints")
    p.add_argument("--warmup", type=int, default=100, help="linear learning-rate warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    p.add_argument("--clip", type=float, default=1.0, help="clip gradients to this global norm (0: off)")
    p.add_argument("--bigram-k", type=float, default=1.0, help="add-k smoothing of the bigram baseline")
    p.add_argument("--sample-chars", type=int, default=300, help="length of each sample in samples.txt")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0], help="sampling temperatures")
    p.add_argument("--d-model", type=int, default=128, help="residual stream width")
    p.add_argument("--layers", type=int, default=2, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d-model must be divisible by it)")
    p.add_argument("--mlp-ratio", type=int, default=4, help="MLP hidden width as a multiple of d-model")
    p.add_argument("--positions", choices=("learned", "rope", "sinusoidal"), default="learned",
                   help="position information")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings and residual branches")
    p.add_argument("--top-k", type=int, default=0, help="samples.txt: draw from the k likeliest characters (0: all)")
    flagcheck.at_least(p, 2, "--seq-len")
    flagcheck.at_least(p, 1, "--eval-every", "--sample-chars", "--d-model", "--layers", "--heads", "--mlp-ratio")
    flagcheck.at_least(p, 0, "--warmup", "--weight-decay", "--clip", "--temperatures", "--top-k")
    flagcheck.rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    flagcheck.above(p, 0, "--bigram-k", "--minutes")
    flagcheck.rate(p, "--dropout")
    flagcheck.text_dataset(p)
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.core import cast
    from deepcore.data import eval_windows, lm_windows, load_corpus, window_nll, write_samples
    from deepcore.interpret import training_curves
    from deepcore.models.bigram import bigram_baseline
    from deepcore.models.sliding import generate_sliding
    from deepcore.models.transformer import TransformerLM
    from deepcore.train import (MetricsLog, TimeBudget, classifier_loss, compile_fn, evaluate, fit, init_state,
                                parallel, read_metrics, spent_before, train_step, warmup_cosine)

    if args.smoke:
        args.d_model, args.layers, args.heads = min(args.d_model, 32), min(args.layers, 2), min(args.heads, 2)
    if args.d_model % args.heads:
        raise common.UsageError(f"--heads: with --smoke, expected a divisor of the smoke width {args.d_model}, "
                                f"got {args.heads}")
    # data: the corpus and its bigram baseline, random training windows, the exact validation windows
    corpus = load_corpus(args.dataset, args.data_dir, max_chars=SMOKE_CHARS if args.smoke else None)
    if len(corpus.train) < args.seq_len + 1 or len(corpus.validation) < 2:
        raise common.UsageError(f"--dataset {args.dataset}: too little text for --seq-len {args.seq_len}")
    baseline = bigram_baseline(corpus.train, corpus.validation, corpus.vocab.size, args.bigram_k)
    devs = common.devices(args.devices)
    pipe = lm_windows(corpus.train, args.seq_len, args.batch_size, args.seed, mode="random")
    val = eval_windows(corpus.validation, args.seq_len, -(-EVAL_WINDOWS // args.devices) * args.devices)

    # how long: --steps / --epochs and/or --minutes of training time
    chars_per_step = args.batch_size * args.seq_len
    timed = args.steps is None and args.epochs is None
    total = None if timed else common.num_steps(args, max(1, len(corpus.train) // chars_per_step), SMOKE_STEPS)
    minutes = MINUTES if timed and args.minutes is None else args.minutes
    if args.smoke:   # a few steps, the time budget only when given explicitly
        total, minutes, args.warmup = min(total or SMOKE_STEPS, SMOKE_STEPS), args.minutes, min(args.warmup, 1)
    budget = TimeBudget(minutes, total, spent_before(args.out) if args.resume else 0.0)
    every = min(args.eval_every, total) if total else args.eval_every

    # model
    cfg = lm_config(corpus.vocab.size, args)
    model = TransformerLM(cfg)

    # optimiser: clipping, then AdamW decaying kernels only; the learning rate is set before each step
    def optimizer(learning_rate):
        clip = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        kernels = lambda params: jax.tree.map(lambda a: a.ndim > 1, params)  # noqa: E731
        return optax.chain(*clip, optax.adamw(learning_rate, b2=0.99, weight_decay=args.weight_decay, mask=kernels))

    tx = optax.inject_hyperparams(optimizer)(learning_rate=args.lr)
    spec = jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32)
    # --mesh, --rules: shardings of the state and batches by the rules; without --mesh data-parallel
    state, mesh, shardings, wrap_loss, put = common.mesh_plan(args, devs, model, spec, tx,
                                                              init_state(model, spec, tx, args.seed))

    # step: cross-entropy on next characters, warm-up x cosine over max(step / total, time / budget)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    step = train_step(wrap_loss(classifier_loss(model, x="inputs", y="targets")), tx, compute_dtype=cdt,
                      grad_norm=False,
                      **shardings)
    step = budget.with_lr(step, warmup_cosine(args.lr, args.warmup))

    def eval_metrics(state, batch):
        params = state.params if cdt is None else cast(state.params, cdt)
        logits, _ = model.apply(params, state.model_state, batch["inputs"], train=False)
        return window_nll(logits, batch["targets"], batch["weight"])

    eval_fn = budget.excluded(compile_fn(eval_metrics, in_shardings=(shardings["state_sharding"],
                                                                     shardings["batch_sharding"]),
                                         out_shardings=parallel.replicated(mesh)))

    # the loop
    n_params = tree.param_count(state.params)
    print(f"char_transformer: {args.layers} x d{args.d_model} ({args.heads} heads, {args.positions} positions, "
          f"context {args.seq_len}), {n_params:,} parameters; "
          f"{args.dataset}: {len(corpus.train):,} train / {len(corpus.validation):,} validation characters, "
          f"vocabulary {corpus.vocab.size}; batches of {args.batch_size} x {args.seq_len} for "
          f"{total or 'unlimited'} steps, {minutes or 'unlimited'} min on {len(devs)} {devs[0].platform} device(s); "
          f"bigram baseline {baseline['bigram_val_bits_per_char']:.4f} bits/char", flush=True)
    result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps, eval_step=eval_fn,
                 eval_batches=lambda: val, eval_every=every, out_dir=args.out, checkpoint_every=every,
                 resume=args.resume, put_batch=put, log_every=max(1, min(50, every)), time_left=budget.time_left)
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    state, steps_done, train_s = result.state, result.step, budget.train_s

    # report: the final validation figure (evaluated now if the clock stopped between evaluations)
    records = read_metrics(args.out)
    final = ([r for r in records if r.get("split") == "val"] or [{"step": None}])[-1]
    if final["step"] != steps_done:
        final = {"step": steps_done, "split": "val", **evaluate(eval_fn, state, val, put)}
        with MetricsLog(args.out, resume_step=steps_done) as log:
            log.append(final)
    params, top_k = jax.device_get(state.params), args.top_k and min(args.top_k, corpus.vocab.size)
    header = (f"char_transformer on {args.dataset} after {steps_done} steps ({train_s / 60:.1f} min of training): "
              f"validation {final['val_bits_per_char']:.4f} bits/char (bigram baseline "
              f"{baseline['bigram_val_bits_per_char']:.4f})")
    write_samples(f"{args.out}/samples.txt", corpus.vocab,
                  lambda p, n, k, t: generate_sliding(cfg, params, p, n, k, t, top_k or None),
                  length=args.sample_chars, temperatures=args.temperatures, seed=args.seed, header=header)
    training_curves(args.out, keys=("loss", "bits_per_char"))
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = {"val_loss_nats_per_char": final["val_loss"], "val_bits_per_char": final["val_bits_per_char"],
               **baseline,
               "bits_per_char_below_bigram": baseline["bigram_val_bits_per_char"] - final["val_bits_per_char"],
               "val_characters": int(len(corpus.validation) - 1), "train_minutes": train_s / 60,
               "train_chars_seen": steps_done * chars_per_step}
    extra = {"parameters": n_params, "vocab_size": corpus.vocab.size, "budget_minutes": minutes,
             "stop_reason": "time_budget" if budget.expired else result.stop_reason,
             "train_chars_per_s": rates[-1] * args.seq_len if rates else None}
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                         steps=steps_done, train_examples_per_s=rates[-1] if rates else None, extra=extra)
    print(json.dumps({"val_bits_per_char": metrics["val_bits_per_char"], "steps": steps_done,
                      "bigram_val_bits_per_char": baseline["bigram_val_bits_per_char"],
                      "train_minutes": round(train_s / 60, 2), "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
