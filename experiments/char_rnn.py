"""A character-level recurrent language model (LSTM, GRU or a simple RNN) on the fortunes corpus.

    python experiments/char_rnn.py --cell lstm     # the BUILD_NOTES.md runs: validation bits/char after
    python experiments/char_rnn.py --cell gru      # 10 minutes of training, next to a bigram baseline
    python experiments/char_rnn.py --dataset tiny_shakespeare      # or --dataset path/to/any.txt
    python experiments/char_rnn.py --smoke --out /tmp/char_rnn

Model: embedding 64 -> one recurrent layer of 384 units -> dense over the vocabulary. Random windows of
128 characters, batches of 64, AdamW(2e-3, b2 0.99) with gradient clipping at 1, 100 warm-up steps and a
cosine decay over the time budget. Reports val_loss_nats_per_char and val_bits_per_char over the whole
validation split (textlm.py says exactly how) and the bigram baseline's figure on the same characters;
writes results.json, metrics.jsonl, checkpoints, samples.txt and curves.png.
"""
import common
import flagcheck
import textlm


def make_model(vocab_size, args):
    from deepcore.models.rnn import char_lm

    return char_lm(vocab_size, embed=args.embed, hidden=args.hidden, num_layers=args.layers, cell=args.cell,
                   dropout=args.dropout)


def generate(model, params, prompt, length, key, temperature):
    from deepcore.models.rnn import sample_continuation

    return sample_continuation(model, params, prompt, length, key=key, temperature=temperature)


def parser():
    p = common.parser("char_rnn", __doc__.splitlines()[0], dataset="fortunes", batch_size=64, lr=2e-3)
    textlm.add_flags(p, seq_len=128, minutes=10.0, eval_every=250, warmup=100)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=384, help="units per recurrent layer")
    p.add_argument("--embed", type=int, default=64, help="character embedding width")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on the recurrent outputs")
    flagcheck.at_least(p, 1, "--hidden", "--embed", "--layers")
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    if args.smoke:
        args.hidden, args.embed = min(args.hidden, 32), min(args.embed, 16)
    describe = f"{args.cell} {args.layers}x{args.hidden} (embedding {args.embed})"
    return textlm.main(args, make_model, generate, describe=describe)


if __name__ == "__main__":
    common.run(main, parser())
