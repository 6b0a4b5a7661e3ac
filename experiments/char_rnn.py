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
import time

import charlm
import common
import flagcheck
import meshes


def parser():
    p = common.parser("char_rnn", __doc__.splitlines()[0], dataset="fortunes", batch_size=64, lr=2e-3)
    charlm.lm_flags(p)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=384, help="units per recurrent layer")
    p.add_argument("--embed", type=int, default=64, help="character embedding width")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on the recurrent outputs")
    flagcheck.at_least(p, 1, "--hidden", "--embed", "--layers")
    flagcheck.rate(p, "--dropout")
    flagcheck.text_dataset(p)
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from deepcore import tree
    from deepcore.models.rnn import char_lm, sample_continuation
    from deepcore.train import classifier_loss, fit, train_step, warmup_cosine

    if args.smoke:
        args.hidden, args.embed = min(args.hidden, 32), min(args.embed, 16)
    # data: the corpus and its bigram baseline, random training windows, the exact validation windows
    corpus, baseline, pipe, val = charlm.corpus_data(args)
    devs = common.devices(args.devices)
    # how long: --steps / --epochs and/or --minutes of training time
    budget, every, minutes = charlm.time_budget(args, corpus)

    # model
    model = char_lm(corpus.vocab.size, embed=args.embed, hidden=args.hidden, num_layers=args.layers,
                    cell=args.cell, dropout=args.dropout)

    # optimiser: clipping, then AdamW decaying kernels only; the learning rate is set before each step
    tx = charlm.optimizer(args)
    spec = jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32)   # --mesh, --rules: by the rules
    state, mesh, shardings, wrap_loss, put = meshes.mesh_plan(args, devs, model, spec, tx)

    # step: cross-entropy on next characters, warm-up x cosine over max(step / total, time / budget)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    step = train_step(wrap_loss(classifier_loss(model, x="inputs", y="targets")), tx, compute_dtype=cdt, grad_norm=False,
                      **shardings)
    step = budget.with_lr(step, warmup_cosine(args.lr, args.warmup))
    eval_fn = charlm.eval_step(model, cdt, budget, shardings, mesh)

    # the loop
    n_params = tree.param_count(state.params)
    charlm.announce(args, f"{args.cell} {args.layers}x{args.hidden} (embedding {args.embed})", n_params, corpus,
                    baseline, budget, minutes, devs)
    result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps, eval_step=eval_fn,
                 eval_batches=lambda: val, eval_every=every, out_dir=args.out, checkpoint_every=every,
                 resume=args.resume, put_batch=put, log_every=max(1, min(50, every)), time_left=budget.time_left)

    # report: the final validation figure (evaluated now if the clock stopped between evaluations), samples.txt
    gen = functools.partial(sample_continuation, model, jax.device_get(result.state.params))
    return charlm.report(args, result, budget, corpus, baseline, lambda p, n, k, t: gen(p, n, key=k, temperature=t),
                         t_start=t_start, minutes=minutes, n_params=n_params, val=val, eval_fn=eval_fn, put=put)


if __name__ == "__main__":
    common.run(main, parser())
