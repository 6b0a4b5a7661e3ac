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
import time

import charlm
import common
import flagcheck
import meshes


def lm_config(vocab_size, args):
    from deepcore.models.transformer import LMConfig

    return LMConfig(vocab_size=vocab_size, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                    max_len=args.seq_len, positions=args.positions, dropout=args.dropout, mlp_ratio=args.mlp_ratio)


def parser():
    p = common.parser("char_transformer", __doc__.splitlines()[0], dataset="fortunes", batch_size=32, lr=2e-3)
    charlm.lm_flags(p)
    p.add_argument("--d-model", type=int, default=128, help="residual stream width")
    p.add_argument("--layers", type=int, default=2, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d-model must be divisible by it)")
    p.add_argument("--mlp-ratio", type=int, default=4, help="MLP hidden width as a multiple of d-model")
    p.add_argument("--positions", choices=("learned", "rope", "sinusoidal"), default="learned",
                   help="position information")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings and residual branches")
    p.add_argument("--top-k", type=int, default=0, help="samples.txt: draw from the k likeliest characters (0: all)")
    flagcheck.transformer_rules(p)
    flagcheck.at_least(p, 0, "--top-k")
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from deepcore import tree
    from deepcore.models.sliding import generate_sliding
    from deepcore.models.transformer import TransformerLM
    from deepcore.train import classifier_loss, fit, train_step, warmup_cosine

    flagcheck.smoke_size(args)   # --smoke: width <= 32, <= 2 layers, <= 2 heads
    # data: the corpus and its bigram baseline, random training windows, the exact validation windows
    corpus, baseline, pipe, val = charlm.corpus_data(args)
    devs = common.devices(args.devices)
    # how long: --steps / --epochs and/or --minutes of training time
    budget, every, minutes = charlm.time_budget(args, corpus)

    # model
    cfg = lm_config(corpus.vocab.size, args)
    model = TransformerLM(cfg)

    # optimiser: clipping, then AdamW decaying kernels only; the learning rate is set before each step
    tx = charlm.optimizer(args)
    spec = jax.ShapeDtypeStruct((args.batch_size, args.seq_len), jnp.int32)
    # --mesh, --rules: shardings of the state and batches by the rules; without --mesh data-parallel
    state, mesh, shardings, wrap_loss, put = meshes.mesh_plan(args, devs, model, spec, tx)

    # step: cross-entropy on next characters, warm-up x cosine over max(step / total, time / budget)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    step = train_step(wrap_loss(classifier_loss(model, x="inputs", y="targets")), tx, compute_dtype=cdt,
                      grad_norm=False, **shardings)
    step = budget.with_lr(step, warmup_cosine(args.lr, args.warmup))
    eval_fn = charlm.eval_step(model, cdt, budget, shardings, mesh)

    # the loop
    n_params = tree.param_count(state.params)
    charlm.announce(args, f"{args.layers} x d{args.d_model} ({args.heads} heads, {args.positions} positions, "
                    f"context {args.seq_len})", n_params, corpus, baseline, budget, minutes, devs)
    result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps, eval_step=eval_fn,
                 eval_batches=lambda: val, eval_every=every, out_dir=args.out, checkpoint_every=every,
                 resume=args.resume, put_batch=put, log_every=max(1, min(50, every)), time_left=budget.time_left)

    # report: the final validation figure (evaluated now if the clock stopped between evaluations), samples.txt
    # drawn with the KV-cache decoder, sliding past the context
    params, top_k = jax.device_get(result.state.params), args.top_k and min(args.top_k, corpus.vocab.size)
    return charlm.report(args, result, budget, corpus, baseline,
                         lambda p, n, k, t: generate_sliding(cfg, params, p, n, k, t, top_k or None),
                         t_start=t_start, minutes=minutes, n_params=n_params, val=val, eval_fn=eval_fn, put=put)


if __name__ == "__main__":
    common.run(main, parser())
