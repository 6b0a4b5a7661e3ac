"""The character language-model recipe shared by ``char_rnn.py`` (and any other LM script, e.g. a transformer):
the corpus and its vocabulary, training windows, the exact validation figure, the bigram baseline, samples.txt.

A script supplies ``make_model(vocab_size, args)`` (ids ``(B, T)`` -> logits ``(B, T, V)``), a
``generate(model, params, prompt (B, P), length, key, temperature) -> ids (B, length)`` and its defaults;
:func:`main` does the rest. Every LM script that uses it is measured the same way:

* **Corpus**: ``--dataset`` (``fortunes``, ``tiny_shakespeare`` or a text file) through ``deepcore.data.load_text``
  with its fixed train / validation split; the vocabulary is the training split's characters (id 0: unknown).
* **Training batches**: windows of ``--seq-len + 1`` characters at random offsets, fresh for every step and a
  function of ``(seed, step)`` only (exact resume); a recurrent model starts every window from a zero state.
  (Truncated BPTT over sequential windows would give an RNN longer contexts, but random windows are simpler,
  resume trivially and serve a transformer unchanged.)
* **Validation figure**: the whole validation split cut into consecutive windows of ``--seq-len``; every
  character after the first is predicted exactly once, from the earlier characters of its own window (no
  context crosses a window boundary), and the mean negative log-likelihood is reported in nats and bits per
  character (``val_loss_nats_per_char``, ``val_bits_per_char``). Compare scripts at the same ``--seq-len``.
* **Baseline**: a count-based bigram model (add-k smoothing, fit on the training split,
  :mod:`deepcore.models.bigram`) scored on the same validation characters.
* **Budget**: ``--minutes`` of training (evaluations excluded, see ``budget.py``); the step reached is recorded.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import NamedTuple

import common
import flagcheck
from budget import Budget, spent_before, warmup_cosine

SMOKE_CHARS = {"train": 50_000, "validation": 4_000}
EVAL_WINDOWS = 128     # windows per evaluation batch
SMOKE_STEPS = 8


class Corpus(NamedTuple):
    name: str
    vocab: object       # deepcore.data.Vocab of the training split
    train: object       # int32 (N,) ids
    validation: object  # int32 (M,) ids


def add_flags(p, *, seq_len: int = 128, minutes: float = 10.0, eval_every: int = 250, warmup: int = 100,
              weight_decay: float = 0.0, clip: float = 1.0):
    """Flags of the LM recipe (on top of :func:`common.parser`'s)."""
    p.add_argument("--seq-len", type=int, default=seq_len,
                   help="characters per training window and per validation window")
    p.add_argument("--minutes", type=float, default=None,
                   help=f"training-time budget, evaluations excluded (default: {minutes:g} when neither --steps "
                        f"nor --epochs is given; with them, an extra cap)")
    p.add_argument("--eval-every", type=int, default=eval_every, help="steps between evaluations and checkpoints")
    p.add_argument("--warmup", type=int, default=warmup, help="linear learning-rate warm-up steps")
    p.add_argument("--weight-decay", type=float, default=weight_decay, help="AdamW decoupled weight decay")
    p.add_argument("--clip", type=float, default=clip, help="clip gradients to this global norm (0: off)")
    p.add_argument("--bigram-k", type=float, default=1.0, help="add-k smoothing of the bigram baseline")
    p.add_argument("--sample-chars", type=int, default=300, help="length of each sample in samples.txt")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0], help="sampling temperatures")
    p.set_defaults(default_minutes=minutes)
    flagcheck.at_least(p, 2, "--seq-len")
    flagcheck.at_least(p, 1, "--eval-every", "--sample-chars")
    flagcheck.at_least(p, 0, "--warmup", "--weight-decay", "--clip", "--temperatures")
    flagcheck.above(p, 0, "--bigram-k", "--minutes")
    flagcheck.text_dataset(p)
    return p


def load_corpus(dataset: str, data_dir=None, *, smoke: bool = False) -> Corpus:
    """Train and validation ids of ``dataset`` with the training split's vocabulary."""
    from deepcore.data import build_vocab, encode, load_text

    train, val = (load_text(dataset, s, data_dir=data_dir) for s in ("train", "validation"))
    if smoke:
        train, val = train[:SMOKE_CHARS["train"]], val[:SMOKE_CHARS["validation"]]
    vocab = build_vocab(train)
    return Corpus(dataset, vocab, encode(vocab, train), encode(vocab, val))


def bigram_baseline(corpus: Corpus, k: float = 1.0) -> dict:
    """The add-k bigram model fit on the training ids, scored on every validation character after the first."""
    from deepcore.models.bigram import bigram_nats, fit_bigram

    nats = bigram_nats(fit_bigram(corpus.train, corpus.vocab.size, k), corpus.validation)
    return {"bigram_val_nats_per_char": nats, "bigram_val_bits_per_char": nats / math.log(2.0)}


def eval_batches(ids, seq_len: int, batch_size: int) -> list:
    """``ids (M,)`` as consecutive windows: batches of ``{"inputs", "targets": int32 (B, T), "weight": (B, T)}``.

    Every target ``ids[1:]`` appears once; padding has weight 0 and ``weight = num_batches / (M - 1)``
    elsewhere, so the mean over batches of ``sum(weight * nll)`` is the exact mean over the M - 1 targets.
    """
    import numpy as np

    ids = np.asarray(ids, np.int32)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"need at least 2 validation characters, got {len(ids)}")
    windows = -(-n // seq_len)
    nb = -(-windows // batch_size)
    rows = nb * batch_size
    inputs = np.zeros(rows * seq_len, np.int32)
    targets = np.zeros(rows * seq_len, np.int32)
    weight = np.zeros(rows * seq_len, np.float32)
    inputs[:n], targets[:n], weight[:n] = ids[:-1], ids[1:], nb / n
    shape = (nb, batch_size, seq_len)
    inputs, targets, weight = inputs.reshape(shape), targets.reshape(shape), weight.reshape(shape)
    return [{"inputs": inputs[i], "targets": targets[i], "weight": weight[i]} for i in range(nb)]


def lm_eval_metrics(logits, targets, weight) -> dict:
    """``{"loss": sum(weight * nll) (nats), "bits_per_char": the same in bits}`` (see :func:`eval_batches`)."""
    import jax.numpy as jnp
    import optax

    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    loss = jnp.sum(weight * nll)
    return {"loss": loss, "bits_per_char": loss / math.log(2.0)}


def write_samples(path: str, vocab, generate, *, length: int, temperatures, seed: int, per_temperature: int = 3,
                  header: str = "") -> str:
    """``samples.txt``: ``per_temperature`` samples of ``length`` characters at each temperature, each begun
    from a newline; ``generate(prompt (B, 1), length, key, temperature) -> ids (B, length)``. Seeded."""
    import jax
    import numpy as np
    from deepcore.data import decode, encode

    start = int(encode(vocab, "\n")[0]) or 1
    prompt = np.full((per_temperature, 1), start, np.int32)
    parts = [header.rstrip("\n") + "\n"] if header else []
    for i, t in enumerate(temperatures):
        ids = np.asarray(generate(prompt, length, jax.random.fold_in(jax.random.PRNGKey(seed), i), t))
        for j in range(per_temperature):
            parts.append(f"=== temperature {t:g}, sample {j + 1} (seed {seed}) ===\n{decode(vocab, ids[j])}\n")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(parts))
    return path


def main(args, make_model, generate, *, describe: str = "") -> dict:
    """Train ``make_model(vocab_size, args)`` on ``args.dataset``; write results.json, metrics.jsonl,
    checkpoints, samples.txt and curves.png in ``args.out``."""
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.core import cast
    from deepcore.data import lm_windows
    from deepcore.train import classifier_loss, compile_fn, evaluate, fit, init_state, parallel, train_step

    corpus = load_corpus(args.dataset, args.data_dir, smoke=args.smoke)
    if len(corpus.train) < args.seq_len + 1 or len(corpus.validation) < 2:
        raise common.UsageError(f"--dataset {args.dataset}: too little text for --seq-len {args.seq_len}")
    baseline = bigram_baseline(corpus, args.bigram_k)
    devs = common.devices(args.devices)
    mesh = parallel.make_mesh(devs)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32

    pipe = lm_windows(corpus.train, args.seq_len, args.batch_size, args.seed, mode="random")
    chars_per_step = args.batch_size * args.seq_len
    if args.steps is None and args.epochs is None:
        total, minutes = None, args.minutes if args.minutes is not None else args.default_minutes
    else:
        total = common.num_steps(args, max(1, len(corpus.train) // chars_per_step), smoke_steps=SMOKE_STEPS)
        minutes = args.minutes
    if args.smoke:   # a few steps, the time budget only when given explicitly
        total, minutes, args.warmup = min(total or SMOKE_STEPS, SMOKE_STEPS), args.minutes, min(args.warmup, 1)
    budget = Budget(minutes, total, spent_before(args.out) if args.resume else 0.0)
    every = min(args.eval_every, total) if total else args.eval_every

    model = make_model(corpus.vocab.size, args)

    def optimizer(learning_rate):
        parts = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        decay_mask = lambda params: jax.tree.map(lambda a: a.ndim > 1, params)  # noqa: E731
        return optax.chain(*parts, optax.adamw(learning_rate, b2=0.99, weight_decay=args.weight_decay,
                                               mask=decay_mask))

    tx = optax.inject_hyperparams(optimizer)(learning_rate=args.lr)
    state = init_state(model, jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32), tx, args.seed)
    shardings = parallel.step_shardings(state, mesh)
    state = parallel.place_state(state, shardings["state_sharding"])
    step = train_step(classifier_loss(model, x="inputs", y="targets"), tx,
                      compute_dtype=None if cdt == jnp.float32 else cdt, grad_norm=False, **shardings)
    step = budget.with_lr(step, warmup_cosine(args.lr, args.warmup))

    def eval_metrics(state, batch):
        params = state.params if cdt == jnp.float32 else cast(state.params, cdt)
        logits, _ = model.apply(params, state.model_state, batch["inputs"], train=False)
        return lm_eval_metrics(logits, batch["targets"], batch["weight"])

    eval_fn = budget.excluded(compile_fn(eval_metrics, in_shardings=(shardings["state_sharding"],
                                                                     shardings["batch_sharding"]),
                                         out_shardings=parallel.replicated(mesh)))
    val = eval_batches(corpus.validation, args.seq_len, -(-EVAL_WINDOWS // args.devices) * args.devices)
    put = functools.partial(parallel.shard_batch, mesh=mesh)

    n_params = tree.param_count(state.params)
    limit = (f"{total} steps" if total else "") + (" or " if total and minutes else "") + \
            (f"{minutes:g} min of training" if minutes else "")
    print(f"{args.experiment}: {describe or 'model'}, {n_params:,} parameters; {args.dataset}: "
          f"{len(corpus.train):,} train / {len(corpus.validation):,} validation characters, vocabulary "
          f"{corpus.vocab.size}; batches of {args.batch_size} x {args.seq_len} for {limit} on {len(devs)} "
          f"{devs[0].platform} device(s), {args.precision}; bigram baseline "
          f"{baseline['bigram_val_bits_per_char']:.4f} bits/char", flush=True)
    result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps, eval_step=eval_fn,
                 eval_batches=lambda: val, eval_every=every, out_dir=args.out, checkpoint_every=every,
                 resume=args.resume, put_batch=put, log_every=max(1, min(50, every)), time_left=budget.time_left)
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    state, steps_done = result.state, result.step
    train_s = budget.train_s

    records = common.read_metrics(args.out)
    last = [r for r in records if r.get("split") == "val"]
    if not last or last[-1]["step"] != steps_done:   # stopped by the clock between evaluations
        ev = evaluate(eval_fn, state, val, put)
        rec = {"step": steps_done, "split": "val", **ev}
        with open(os.path.join(args.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        last.append(rec)
    final = last[-1]

    gen = functools.partial(generate, model, jax.device_get(state.params))
    header = (f"{args.experiment} on {args.dataset} after {steps_done} steps ({train_s / 60:.1f} min of "
              f"training): validation {final['val_bits_per_char']:.4f} bits/char (bigram baseline "
              f"{baseline['bigram_val_bits_per_char']:.4f})")
    write_samples(os.path.join(args.out, "samples.txt"), corpus.vocab, gen, length=args.sample_chars,
                  temperatures=args.temperatures, seed=args.seed, header=header)
    common.plot_curves(args.out, keys=("loss", "bits_per_char"))

    train_rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = {"val_loss_nats_per_char": final["val_loss"], "val_bits_per_char": final["val_bits_per_char"],
               **baseline,
               "bits_per_char_below_bigram": baseline["bigram_val_bits_per_char"] - final["val_bits_per_char"],
               "val_characters": int(len(corpus.validation) - 1), "train_minutes": train_s / 60,
               "train_chars_seen": steps_done * chars_per_step}
    extra = {"parameters": n_params, "vocab_size": corpus.vocab.size, "stop_reason":
             "time_budget" if budget.expired else result.stop_reason, "budget_minutes": minutes,
             "train_chars_per_s": train_rates[-1] * args.seq_len if train_rates else None}
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                               steps=steps_done, train_examples_per_s=train_rates[-1] if train_rates else None,
                               extra=extra)
    print(json.dumps({"val_bits_per_char": metrics["val_bits_per_char"],
                      "bigram_val_bits_per_char": baseline["bigram_val_bits_per_char"],
                      "steps": steps_done, "train_minutes": round(train_s / 60, 2), "out": args.out}))
    return res
