"""Character-level translation of dictionary entries with an encoder-decoder transformer (FreeDict, offline).

    python experiments/translate.py                    # the BUILD_NOTES.md run: English -> French words
    python experiments/translate.py --pair deu-eng     # any installed dict-freedict-* pair
    python experiments/translate.py --smoke --out /tmp/translate

Data: FreeDict entries (headword, first translation), lowercased, < --max-len characters; 10% of headwords held out
as test, 5% of the rest as validation; --extra-reverse adds the opposite dictionary read backwards, less held-out
words. Model: deepcore.models.seq2seq on characters. Beam and greedy translations of validation and test, scored
by chrF, CER and exact match beside copying the input, in results.json and samples.txt (and metrics, curves.png).
"""
import json
import time

import common
import flagcheck

SMOKE = {"train": 256, "val": 64, "test": 64, "extra": 256, "steps": 6}
TEST, VAL = (0.1, 0), (0.05, 1)   # (held-out fraction, hash seed): test headwords, then validation among the rest
DECODE_BATCH = 256


def parser():
    p = common.parser("translate", __doc__.splitlines()[0], dataset="freedict", batch_size=64, lr=2e-3, steps=4000)
    p.add_argument("--pair", default="eng-fra", help="FreeDict pair SRC-TGT (Debian dict-freedict-SRC-TGT)")
    p.add_argument("--extra-reverse", default="auto", choices=("auto", "yes", "no"), help="also train on the opposite "
                   "dictionary read backwards (fra-eng for eng-fra), less held-out words; auto: if installed")
    p.add_argument("--max-len", type=int, default=32, help="characters per side, end-of-sequence included")
    p.add_argument("--d-model", type=int, default=64, help="residual stream width")
    p.add_argument("--heads", type=int, default=4, help="attention heads (a divisor of --d-model)")
    p.add_argument("--enc-layers", type=int, default=2, help="encoder blocks")
    p.add_argument("--dec-layers", type=int, default=2, help="decoder blocks")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout on embeddings and residual branches")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW decoupled weight decay")
    p.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    p.add_argument("--eval-every", type=int, default=500, help="steps between evaluations and checkpoints")
    p.add_argument("--beam", type=int, default=4, help="beam width of the final translations")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam score: log p / length ** this")
    p.add_argument("--examples", type=int, default=40, help="test translations written to samples.txt")
    flagcheck.rule(p, "--dataset", "freedict (choose the dictionary with --pair)", lambda v, a: v == "freedict")
    flagcheck.rule(p, "--pair", "SRC-TGT such as eng-fra", lambda v, a: len(v.split("-")) == 2)
    flagcheck.at_least(p, 3, "--max-len")
    flagcheck.at_least(p, 1, "--d-model", "--heads", "--enc-layers", "--dec-layers", "--eval-every", "--beam")
    flagcheck.at_least(p, 0, "--weight-decay", "--warmup", "--length-penalty", "--examples")
    flagcheck.rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    """Flags -> data -> model -> optimiser and step -> the loop (fit) -> test translations -> report."""
    t_start = time.perf_counter()
    from deepcore import tree
    from deepcore.train import fit

    vocab, (train, val, test), arrays, pipe, steps = data(args)
    every = min(args.eval_every, steps)   # the loop: validation loss (one batch) and a checkpoint every `every` steps
    common.devices(args.devices)
    cfg, model, loss_fn = model_and_loss(args, vocab)
    state, step, evaluate = optimiser_and_step(args, model, loss_fn, steps)
    n_params, (rev, added, dropped) = tree.param_count(state.params), args.extra_counts.values()
    print(f"translate {args.pair}: {len(train):,} train ({added:,} read backwards from {rev or 'no dictionary'}, "
          f"{dropped:,} of its left out as held-out words) / {len(val):,} validation / {len(test):,} test pairs, "
          f"{len(vocab)} characters; {args.enc_layers}+{args.dec_layers} blocks x d{args.d_model}, "
          f"{n_params:,} parameters; {steps} steps of {args.batch_size}", flush=True)
    result = fit(step, state, pipe.batches, steps=steps, eval_step=evaluate, eval_batches=lambda: [arrays["val"]],
                 eval_every=every, out_dir=args.out, checkpoint_every=every, resume=args.resume,
                 log_every=max(1, min(100, every)))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    outputs = translate(args, cfg, result.state.params, vocab, arrays["val"], arrays["test"])
    return report(args, result, t_start, n_params, len(train), (val, test), outputs)


def data(args):
    """(vocab, (train, val, test) pairs, {split: char ids [N, --max-len], 0 = pad}, training batches, steps)."""
    from deepcore.data import encode_pairs, load_dictionary, make_batches
    from deepcore.data.dictionary import has_dictionary, held_out, reversed_pairs, split_by_headword, vocabulary

    dic = load_dictionary(args.pair, args.data_dir, max_chars=args.max_len - 1, test_fraction=TEST[0], seed=TEST[1])
    (train, val), test = split_by_headword(dic.train, *VAL), dic.test
    rev = "-".join(args.pair.split("-")[::-1])   # the opposite dictionary: fra-eng for eng-fra
    use = args.extra_reverse == "yes" or args.extra_reverse == "auto" and has_dictionary(rev, args.data_dir)
    extra, dropped = reversed_pairs(rev, args.data_dir, max_chars=args.max_len - 1, known=train, exclude=lambda w:
                                    held_out(w, *TEST) or held_out(w, *VAL)) if use else ([], 0)   # no held-out word
    if args.smoke:
        train, val, test, extra = (x[:SMOKE[k]] for x, k in zip((train, val, test, extra), SMOKE))
    train, args.extra_counts = train + extra, {"extra_reverse": rev if use else None, "extra_train_pairs": len(extra),
                                               "extra_dropped_held_out": dropped}
    if args.batch_size > len(train):
        raise common.UsageError(f"--batch-size: expected at most {len(train)} (training pairs), got {args.batch_size}")
    vocab = vocabulary(dic.train + extra)
    arrays = {k: encode_pairs(v, vocab, args.max_len) for k, v in zip(("train", "val", "test"), (train, val, test))}
    pipe = make_batches(arrays["train"], args.batch_size, seed=args.seed)
    steps = common.num_steps(args, pipe.steps_per_epoch, smoke_steps=SMOKE["steps"])
    return vocab, (train, val, test), arrays, pipe, steps


def model_and_loss(args, vocab):
    """The encoder-decoder on one character vocabulary, and its masked teacher-forced cross-entropy."""
    import jax.numpy as jnp
    import optax

    from deepcore.data.dictionary import SPECIALS
    from deepcore.models.seq2seq import EncoderDecoder, Seq2SeqConfig, seq2seq_apply

    if args.smoke:
        args.d_model, args.heads, args.enc_layers, args.dec_layers = 32, 2, 1, 1
    cfg = Seq2SeqConfig(vocab_size=len(SPECIALS) + len(vocab), d_model=args.d_model, num_heads=args.heads,
                        encoder_layers=args.enc_layers, decoder_layers=args.dec_layers, dropout=args.dropout,
                        max_source_len=args.max_len, max_target_len=args.max_len)

    def loss_fn(params, model_state, batch, key, train):
        logits = seq2seq_apply(cfg, params, batch["source"], batch["target_in"], batch["source_mask"], key=key,
                               train=train)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["target_out"])
        mask = batch["target_mask"].astype(jnp.float32)
        loss = jnp.sum(nll * mask) / jnp.sum(mask)
        hits = (jnp.argmax(logits, -1) == batch["target_out"]).astype(jnp.float32)
        return loss, (model_state, {"loss": loss, "char_accuracy": jnp.sum(hits * mask) / jnp.sum(mask)})
    return cfg, EncoderDecoder(cfg), loss_fn


def optimiser_and_step(args, model, loss_fn, steps):
    """The initial state under AdamW (clip 1, warm-up then cosine decay over the steps) and the jitted steps."""
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.train import eval_step, init_state, train_step

    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(args.warmup, steps // 2), max(steps, 2),
                                                  end_value=args.lr * 0.05)
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(schedule, weight_decay=args.weight_decay, mask=tree.decay_mask))
    state = init_state(model, jax.ShapeDtypeStruct((args.batch_size, args.max_len), jnp.int32), tx, args.seed)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    return state, train_step(loss_fn, tx, compute_dtype=cdt, grad_norm=False), eval_step(loss_fn, compute_dtype=cdt)


def translate(args, cfg, params, vocab, *sets):
    """[(beam, greedy) translations (strings) of each set["source"] [N, --max-len]], in fixed-size batches."""
    import jax
    import numpy as np

    from deepcore.data.dictionary import BOS, EOS, PAD, decode_ids
    from deepcore.models.search import beam_search, greedy_search, seq2seq_step

    @jax.jit
    def search(params, source, mask):
        beams, _ = beam_search(*seq2seq_step(cfg, params, source, mask, beam_width=args.beam), source.shape[0],
                               beam_width=args.beam, max_len=args.max_len, bos_id=BOS, eos_id=EOS, pad_id=PAD,
                               length_penalty=args.length_penalty)
        greedy, _ = greedy_search(*seq2seq_step(cfg, params, source, mask), source.shape[0], max_len=args.max_len,
                                  bos_id=BOS, eos_id=EOS, pad_id=PAD)
        return beams[:, 0], greedy

    size, texts = min(DECODE_BATCH, max(len(s["source"]) for s in sets)), []   # one compilation for every set
    for s in sets:   # the last batch is padded by repeating the set's first sources
        rows = np.arange(-(-(n := len(s["source"])) // size) * size) % n
        outs = [search(params, s["source"][rows[i:i + size]], s["source_mask"][rows[i:i + size]])
                for i in range(0, len(rows), size)]
        texts.append(tuple([decode_ids(r, vocab) for o in outs for r in np.asarray(o[k])][:n] for k in (0, 1)))
    return texts


def report(args, result, t_start, n_params, n_train, sets, outputs):
    """samples.txt, curves.png, results.json: chrF / CER / exact of beam, greedy and copy on test (and validation)."""
    from deepcore.interpret import training_curves
    from deepcore.metrics import translation_scores
    from deepcore.train import read_metrics

    m = {}
    for split, pairs, (beam, greedy) in zip(("val_", "test_"), sets, outputs):
        sources, refs = zip(*pairs)   # the test set's are written below
        m |= translation_scores({"beam": beam, "greedy": greedy, "copy": sources}, refs, split)
    records = read_metrics(args.out)
    last_val = ([r for r in records if "val_loss" in r] or [{}])[-1]
    m |= dict(val_loss_nats_per_char=last_val.get("val_loss"), val_char_accuracy=last_val.get("val_char_accuracy"),
              chrf_above_copy=m["test_chrf_beam"] - m["test_chrf_copy"], test_pairs=len(refs))
    lines = [f"translate {args.pair}, {len(refs)} held-out entries after {result.step} steps: chrF beam "
             f"{m['test_chrf_beam']:.1f} / greedy {m['test_chrf_greedy']:.1f} / copy {m['test_chrf_copy']:.1f}; "
             f"CER beam {m['test_cer_beam']:.3f} / copy {m['test_cer_copy']:.3f}",
             f"{'source':<24} {'reference':<24} {'beam ' + str(args.beam):<24} greedy"]
    lines += [f"{s:<24} {r:<24} {b:<24} {g}" for s, r, b, g in list(zip(sources, refs, beam, greedy))[:args.examples]]
    with open(f"{args.out}/samples.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:17]), flush=True)
    training_curves(args.out, keys=("loss", "char_accuracy"))
    rates = [r["examples_per_s"] for r in records if "examples_per_s" in r] or [None]
    extra = dict(parameters=n_params, train_pairs=n_train, stop_reason=result.stop_reason, **args.extra_counts)
    res = common.write_results(args, dataset=f"freedict-{args.pair}", metrics=m, wall_s=time.perf_counter() - t_start,
                               steps=result.step, train_examples_per_s=rates[-1], extra=extra)
    print(json.dumps({k: round(v, 4) for k, v in m.items() if "_chrf_" in k} | {"steps": result.step, "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
