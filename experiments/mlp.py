"""A multilayer perceptron on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset).

    python experiments/mlp.py                      # the BUILD_NOTES.md run: >= 90% test accuracy in 5 minutes
    python experiments/mlp.py --smoke --out /tmp/mlp

Model: flatten -> [dense 1024 -> ReLU -> dropout] x 2 -> dense 10, AdamW with warm-up + cosine decay,
label smoothing, random left-right flips. Writes results.json, metrics.jsonl, checkpoints and curves.png.
"""
import common
import flagcheck
import image_classifier


def make_model(num_classes, image_shape, args):
    from deepcore.models import mlp

    return mlp.MLP(num_classes, tuple(args.widths), dropout=args.dropout, feature_dims=len(image_shape))


def parser():
    p = common.parser("mlp", __doc__.splitlines()[0], epochs=40, batch_size=256, lr=2e-3)
    image_classifier.add_flags(p, augment="flip", weight_decay=0.02, warmup=0.02, label_smoothing=0.1, ynn="off")
    p.add_argument("--widths", type=int, nargs="+", default=[1024, 1024], help="hidden layer sizes")
    p.add_argument("--dropout", type=float, default=0.3, help="drop rate after each hidden layer")
    flagcheck.at_least(p, 1, "--widths")
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    return image_classifier.main(args, make_model)


if __name__ == "__main__":
    common.run(main, parser())
