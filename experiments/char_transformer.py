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
evaluation are char_rnn.py's (textlm.py): random windows of --seq-len characters, AdamW(b2 0.99) with
gradient clipping, linear warm-up and a cosine decay over the --minutes budget; val_loss_nats_per_char and
val_bits_per_char over the whole validation split, the bigram baseline on the same characters.
samples.txt is drawn with the KV-cache decoder (deepcore.models.generate; --temperatures, --top-k, seeded):
a sample longer than the context slides its window by half a context and refills the cache from the kept
half, so every character sees between seq_len/2 and seq_len earlier ones, as in training.
Writes results.json, metrics.jsonl, checkpoints (--resume), samples.txt and curves.png.
"""
import common
import flagcheck
import textlm


def lm_config(vocab_size, args):
    from deepcore.models.transformer import LMConfig

    return LMConfig(vocab_size=vocab_size, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                    max_len=args.seq_len, positions=args.positions, dropout=args.dropout, mlp_ratio=args.mlp_ratio)


def make_model(vocab_size, args):
    from deepcore.models.transformer import TransformerLM

    return TransformerLM(lm_config(vocab_size, args))


def sliding_generate(cfg, params, prompt, length, key, temperature, top_k=None):
    """``length`` ids after ``prompt: (B, P)`` (``P < cfg.max_len``) from the KV-cache decoder: ``(B, length)``.

    Within one context the cache does the work; when the context is full the newest ``max_len // 2`` ids
    become the next prompt (positions restart at 0, as in training windows). Chunk ``i`` samples with
    ``fold_in(key, i)``; temperature 0 is greedy. Chunks are always whole (the excess cut): two compilations at most (first chunk, later ones).
    """
    import jax
    import jax.numpy as jnp

    from deepcore.models.generate import generate

    keep = max(1, cfg.max_len // 2)
    ctx = jnp.asarray(prompt, jnp.int32)[:, -(cfg.max_len - 1):]
    out, done, i = [], 0, 0
    while done < length:   # whole chunks (the last one cut afterwards): one compilation per prompt length
        n = cfg.max_len - ctx.shape[1]
        toks, _ = generate(cfg, params, ctx, n, key=jax.random.fold_in(key, i), temperature=max(temperature, 1e-6),
                           top_k=top_k, greedy=temperature == 0)
        out.append(toks)
        ctx = jnp.concatenate([ctx, toks], axis=1)[:, -keep:]
        done, i = done + n, i + 1
    return jnp.concatenate(out, axis=1)[:, :length]


def parser():
    p = common.parser("char_transformer", __doc__.splitlines()[0], dataset="fortunes", batch_size=32, lr=2e-3)
    textlm.add_flags(p, seq_len=128, minutes=10.0, eval_every=250, warmup=100)
    p.add_argument("--d-model", type=int, default=128, help="residual stream width")
    p.add_argument("--layers", type=int, default=2, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d-model must be divisible by it)")
    p.add_argument("--mlp-ratio", type=int, default=4, help="MLP hidden width as a multiple of d-model")
    p.add_argument("--positions", choices=("learned", "rope", "sinusoidal"), default="learned",
                   help="position information")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings and residual branches")
    p.add_argument("--top-k", type=int, default=0, help="samples.txt: draw from the k likeliest characters (0: all)")
    flagcheck.at_least(p, 1, "--d-model", "--layers", "--heads", "--mlp-ratio")
    flagcheck.rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    flagcheck.at_least(p, 0, "--top-k")
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    if args.smoke:
        args.d_model, args.layers, args.heads = min(args.d_model, 32), min(args.layers, 2), min(args.heads, 2)
    if args.d_model % args.heads:
        raise common.UsageError(f"--heads: with --smoke, expected a divisor of the smoke width {args.d_model}, "
                                f"got {args.heads}")
    top_k = args.top_k or None

    def generate(model, params, prompt, length, key, temperature):
        vocab = params["embed"]["w"].shape[0]
        return sliding_generate(lm_config(vocab, args), params, prompt, length, key, temperature,
                                top_k and min(top_k, vocab))

    describe = (f"transformer {args.layers} x d{args.d_model} ({args.heads} heads, {args.positions} positions, "
                f"context {args.seq_len})")
    return textlm.main(args, make_model, generate, describe=describe)


if __name__ == "__main__":
    common.run(main, parser())
