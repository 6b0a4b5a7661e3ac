"""A character-level recurrent language model (LSTM, GRU or a simple RNN) on the fortunes corpus.

    python experiments/char_rnn.py --cell lstm     # the BUILD_NOTES.md runs: validation bits/char after
    python experiments/char_rnn.py --cell gru      # 10 minutes of training, next to a bigram baseline
    python experiments/char_rnn.py --dataset tiny_shakespeare      # or --dataset path/to/any.txt
    python experiments/char_rnn.py --smoke --out /tmp/char_rnn

Model: embedding 64 -> one recurrent layer of 384 units -> dense over the vocabulary. Random windows of
128 characters (a function of (seed, step): exact resume; every window starts from a zero state), batches of
64, AdamW(2e-3, b2 0.99) with gradient clipping at 1, 100 warm-up steps and a cosine decay over the --minutes
budget of training time (evaluations excluded, continued across --resume; deepcore.train.budget).
Reports val_loss_nats_per_char and val_bits_per_char over the whole validation split, every character after
the first predicted once from the earlier ones of its --seq-len window (deepcore.data.corpus; compare scripts
at the same --seq-len), and an add-k bigram baseline on the same characters. Writes results.json,
metrics.jsonl, checkpoints, samples.txt and curves.png.
"""
import functools
import json
import time

import common
import flagcheck

SMOKE_CHARS = {"train": 50_000, "validation": 4_000}
SMOKE_STEPS = 8
EVAL_WINDOWS = 128     # windows per evaluation batch
MINUTES = 10.0         # the time budget when neither --steps nor --epochs is given


def parser():
    p = common.parser("char_rnn", __doc__.splitlines()[0], dataset="fortunes", batch_size=64, lr=2e-3)
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
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=384, help="units per recurrent layer")
    p.add_argument("--embed", type=int, default=64, help="character embedding width")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on the recurrent outputs")
    flagcheck.at_least(p, 2, "--seq-len")
    flagcheck.at_least(p, 1, "--eval-every", "--sample-chars", "--hidden", "--embed", "--layers")
    flagcheck.at_least(p, 0, "--warmup", "--weight-decay", "--clip", "--temperatures")
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
    from deepcore.models.rnn import char_lm, sample_continuation
    from deepcore.train import (MetricsLog, TimeBudget, classifier_loss, compile_fn, evaluate, fit, init_state,
                                parallel, read_metrics, spent_before, train_step, warmup_cosine)

    if args.smoke:
        args.hidden, args.embed = min(args.hidden, 32), min(args.embed, 16)
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
    model = char_lm(corpus.vocab.size, embed=args.embed, hidden=args.hidden, num_layers=args.layers,
                    cell=args.cell, dropout=args.dropout)

    # optimiser: clipping, then AdamW decaying kernels only; the learning rate is set before each step
    def optimizer(learning_rate):
        clip = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        kernels = lambda params: jax.tree.map(lambda a: a.ndim > 1, params)  # noqa: E731
        return optax.chain(*clip, optax.adamw(learning_rate, b2=0.99, weight_decay=args.weight_decay, mask=kernels))

    tx = optax.inject_hyperparams(optimizer)(learning_rate=args.lr)
    spec = jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32)   # --mesh, --rules: by the rules
    state, mesh, shardings, wrap_loss, put = common.mesh_plan(args, devs, model, spec, tx,
                                                              init_state(model, spec, tx, args.seed))

    # step: cross-entropy on next characters, warm-up x cosine over max(step / total, time / budget)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    step = train_step(wrap_loss(classifier_loss(model, x="inputs", y="targets")), tx, compute_dtype=cdt, grad_norm=False,
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
    print(f"char_rnn: {args.cell} {args.layers}x{args.hidden} (embedding {args.embed}), {n_params:,} parameters; "
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
    gen = functools.partial(sample_continuation, model, jax.device_get(state.params))
    header = (f"char_rnn on {args.dataset} after {steps_done} steps ({train_s / 60:.1f} min of training): "
              f"validation {final['val_bits_per_char']:.4f} bits/char (bigram baseline "
              f"{baseline['bigram_val_bits_per_char']:.4f})")
    write_samples(f"{args.out}/samples.txt", corpus.vocab, lambda p, n, k, t: gen(p, n, key=k, temperature=t),
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
