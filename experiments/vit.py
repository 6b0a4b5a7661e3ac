"""A small vision transformer on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset).

    python experiments/vit.py                      # the BUILD_NOTES.md run: test accuracy after 15 minutes
    python experiments/vit.py --pool mean          # average the patch tokens instead of a class token
    python experiments/vit.py --smoke --out /tmp/vit

Model (deepcore.models.vit.ViT): 4x4 patches (49 tokens at 28x28) projected to width 96, a class token
(--pool cls) or mean pooling (--pool mean), learned positions, 4 pre-LayerNorm blocks (4 heads, 2x exact-GELU
MLP, scanned over layers), a final LayerNorm and a dense head: 0.31M parameters. 5 epochs of batches of 128
are sized for about 15 minutes on 2 CPU cores (val_accuracy_at_15min is recorded either way). Training is the image-classifier recipe of mlp.py
and cnn.py (image_classifier.py): random crops and flips, AdamW with warm-up + cosine decay, label
smoothing, exact batched evaluation. Writes results.json, metrics.jsonl, checkpoints, curves.png and
saliency.png.
"""
import common
import flagcheck
import image_classifier


def make_model(num_classes, image_shape, args):
    from deepcore.models.vit import ViT

    if image_shape[0] % args.patch_size or image_shape[1] % args.patch_size:
        raise common.UsageError(f"--patch-size {args.patch_size} must divide the {image_shape[0]}x{image_shape[1]} "
                                f"images of {args.dataset}")
    return ViT(num_classes, patch_size=args.patch_size, d_model=args.d_model, num_layers=args.layers,
               num_heads=args.heads, pool=args.pool, mlp_ratio=args.mlp_ratio, dropout=args.dropout)


def parser():
    p = common.parser("vit", __doc__.splitlines()[0], epochs=5, batch_size=128, lr=2e-3)
    image_classifier.add_flags(p, augment="crop+flip", weight_decay=0.05, warmup=0.05, label_smoothing=0.1,
                               ynn="off")
    p.add_argument("--patch-size", type=int, default=4, help="side of the square patches (must divide H and W)")
    p.add_argument("--d-model", type=int, default=96, help="token width")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d-model must be divisible by it)")
    p.add_argument("--mlp-ratio", type=int, default=2, help="MLP hidden width as a multiple of d-model")
    p.add_argument("--pool", choices=("cls", "mean"), default="cls", help="class token or mean of the tokens")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings and residual branches")
    flagcheck.at_least(p, 1, "--patch-size", "--d-model", "--layers", "--heads", "--mlp-ratio")
    flagcheck.rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    if args.smoke:
        args.d_model, args.layers, args.heads = min(args.d_model, 32), min(args.layers, 2), min(args.heads, 2)
    if args.d_model % args.heads:
        raise common.UsageError(f"--heads: with --smoke, expected a divisor of the smoke width {args.d_model}, "
                                f"got {args.heads}")
    return image_classifier.main(args, make_model, saliency=True)


if __name__ == "__main__":
    common.run(main, parser())
