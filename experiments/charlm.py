"""The steps the character language-model recipes (char_rnn.py, char_transformer.py; finetune.py's constants)
share, each named for what it does; each recipe calls them in order (data -> how long -> model -> optimiser ->
step -> its own ``fit`` call -> report), so the loop stays in the script. JAX is imported inside the functions: a
refused flag never imports it."""
import json
import time

import common
import flagcheck

SMOKE_CHARS = {"train": 50_000, "validation": 4_000}   # characters of each split in a --smoke run
SMOKE_STEPS = 8
EVAL_WINDOWS = 128     # windows per evaluation batch
MINUTES = 10.0         # the time budget when neither --steps nor --epochs is given


def lm_flags(p) -> None:
    """The flags (and their rules) of the language-model recipes: window length, time budget, schedule,
    optimiser, bigram baseline, samples.txt; and --dataset must be a text corpus."""
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
    flagcheck.at_least(p, 2, "--seq-len")
    flagcheck.at_least(p, 1, "--eval-every", "--sample-chars")
    flagcheck.at_least(p, 0, "--warmup", "--weight-decay", "--clip", "--temperatures")
    flagcheck.above(p, 0, "--bigram-k", "--minutes")
    flagcheck.text_dataset(p)


def corpus_data(args):
    """``(corpus, baseline, pipe, val)``: the corpus (--smoke: its first ``SMOKE_CHARS``), the add-k bigram
    baseline, random training windows and the exact whole-validation windows (a multiple of --devices)."""
    from deepcore.data import eval_windows, lm_windows, load_corpus
    from deepcore.models.bigram import bigram_baseline

    corpus = load_corpus(args.dataset, args.data_dir, max_chars=SMOKE_CHARS if args.smoke else None)
    if len(corpus.train) < args.seq_len + 1 or len(corpus.validation) < 2:
        raise common.UsageError(f"--dataset {args.dataset}: too little text for --seq-len {args.seq_len}")
    baseline = bigram_baseline(corpus.train, corpus.validation, corpus.vocab.size, args.bigram_k)
    pipe = lm_windows(corpus.train, args.seq_len, args.batch_size, args.seed, mode="random")
    val = eval_windows(corpus.validation, args.seq_len, -(-EVAL_WINDOWS // args.devices) * args.devices)
    return corpus, baseline, pipe, val


def time_budget(args, corpus):
    """``(budget, every, minutes)``: --steps / --epochs and/or --minutes of training time as a ``TimeBudget``
    (--smoke: a few steps, the time budget only when given explicitly, warm-up at most 1) and the evaluation
    interval."""
    from deepcore.train import TimeBudget, spent_before

    timed = args.steps is None and args.epochs is None
    total = None if timed else common.num_steps(args, max(1, len(corpus.train) // (args.batch_size * args.seq_len)),
                                                SMOKE_STEPS)
    minutes = MINUTES if timed and args.minutes is None else args.minutes
    if args.smoke:
        total, minutes, args.warmup = min(total or SMOKE_STEPS, SMOKE_STEPS), args.minutes, min(args.warmup, 1)
    budget = TimeBudget(minutes, total, spent_before(args.out) if args.resume else 0.0)
    return budget, min(args.eval_every, total) if total else args.eval_every, minutes


def optimizer(args):
    """Clipping (--clip), then AdamW (b2 0.99) decaying kernels only; the learning rate is a hyperparameter set
    before each step (``TimeBudget.with_lr``)."""
    import optax

    from deepcore.tree import decay_mask

    def make(learning_rate):
        clip = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        return optax.chain(*clip, optax.adamw(learning_rate, b2=0.99, weight_decay=args.weight_decay,
                                              mask=decay_mask))

    return optax.inject_hyperparams(make)(learning_rate=args.lr)


def eval_step(model, cdt, budget, shardings, mesh):
    """The compiled validation metrics of one window batch (``window_nll``), eval mode in the compute dtype
    ``cdt`` (None: the parameters' own), its time excluded from ``budget``."""
    from deepcore.core import cast
    from deepcore.data import window_nll
    from deepcore.train import compile_fn, parallel

    def eval_metrics(state, batch):
        params = state.params if cdt is None else cast(state.params, cdt)
        logits, _ = model.apply(params, state.model_state, batch["inputs"], train=False)
        return window_nll(logits, batch["targets"], batch["weight"])

    return budget.excluded(compile_fn(eval_metrics, in_shardings=(shardings["state_sharding"],
                                                                  shardings["batch_sharding"]),
                                      out_shardings=parallel.replicated(mesh)))


def announce(args, model: str, n_params: int, corpus, baseline, budget, minutes, devs) -> None:
    """Print the run's one-line summary: ``model`` (its description), the data, the length, the baseline."""
    print(f"{args.experiment}: {model}, {n_params:,} parameters; "
          f"{args.dataset}: {len(corpus.train):,} train / {len(corpus.validation):,} validation characters, "
          f"vocabulary {corpus.vocab.size}; batches of {args.batch_size} x {args.seq_len} for "
          f"{budget.total_steps or 'unlimited'} steps, {minutes or 'unlimited'} min on {len(devs)} "
          f"{devs[0].platform} device(s); bigram baseline {baseline['bigram_val_bits_per_char']:.4f} bits/char",
          flush=True)


def final_validation(args, eval_fn, state, val, put, steps_done: int):
    """``(final, records)``: the last validation record of ``metrics.jsonl``, evaluated now (and appended) if
    the clock stopped between evaluations; ``records``: the log as read before that."""
    from deepcore.train import MetricsLog, evaluate, read_metrics

    records = read_metrics(args.out)
    final = ([r for r in records if r.get("split") == "val"] or [{"step": None}])[-1]
    if final["step"] != steps_done:
        final = {"step": steps_done, "split": "val", **evaluate(eval_fn, state, val, put)}
        with MetricsLog(args.out, resume_step=steps_done) as log:
            log.append(final)
    return final, records


def report(args, result, budget, corpus, baseline, sample, *, t_start: float, minutes, n_params: int, val, eval_fn,
           put):
    """After ``fit``: the final validation figure, samples.txt (``sample(prompt, n, key, temperature)``),
    curves.png and results.json. A non-finite stop is one line (exit 2)."""
    from deepcore.data import write_samples
    from deepcore.interpret import training_curves

    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    steps_done, train_s = result.step, budget.train_s
    final, records = final_validation(args, eval_fn, result.state, val, put, steps_done)
    header = (f"{args.experiment} on {args.dataset} after {steps_done} steps ({train_s / 60:.1f} min of training): "
              f"validation {final['val_bits_per_char']:.4f} bits/char (bigram baseline "
              f"{baseline['bigram_val_bits_per_char']:.4f})")
    write_samples(f"{args.out}/samples.txt", corpus.vocab, sample, length=args.sample_chars,
                  temperatures=args.temperatures, seed=args.seed, header=header)
    training_curves(args.out, keys=("loss", "bits_per_char"))
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = {"val_loss_nats_per_char": final["val_loss"], "val_bits_per_char": final["val_bits_per_char"],
               **baseline,
               "bits_per_char_below_bigram": baseline["bigram_val_bits_per_char"] - final["val_bits_per_char"],
               "val_characters": int(len(corpus.validation) - 1), "train_minutes": train_s / 60,
               "train_chars_seen": steps_done * args.batch_size * args.seq_len}
    extra = {"parameters": n_params, "vocab_size": corpus.vocab.size, "budget_minutes": minutes,
             "stop_reason": "time_budget" if budget.expired else result.stop_reason,
             "train_chars_per_s": rates[-1] * args.seq_len if rates else None}
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                               steps=steps_done, train_examples_per_s=rates[-1] if rates else None, extra=extra)
    print(json.dumps({"val_bits_per_char": metrics["val_bits_per_char"], "steps": steps_done,
                      "bigram_val_bits_per_char": baseline["bigram_val_bits_per_char"],
                      "train_minutes": round(train_s / 60, 2), "out": args.out}))
    return res
