"""A convolutional network on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset): compact VGG or a ResNet.

    python experiments/cnn.py                      # the BUILD_NOTES.md run (target: 93.5% test accuracy in 15 min)
    python experiments/cnn.py --arch resnet --smoke --out /tmp/cnn

Model (--arch vgg): [conv3x3 32]-pool-[conv3x3 64 x2]-pool-[conv3x3 128 x2]-global average pool-dense 10, each
conv followed by BatchNorm and ReLU. --arch resnet: a ResNet with basic blocks (--widths, --depths).
Training: random crops (after padding) and flips, AdamW with warm-up + cosine decay, label smoothing, steps
compiled with XLA's YNNPACK fusion on CPUs; evaluation averages each image with its mirror (--tta flip).
Writes results.json, metrics.jsonl, checkpoints, curves.png and saliency.png (input-gradient maps of test images).
"""
import common
import flagcheck
import image_classifier


def make_model(num_classes, image_shape, args):
    from deepcore.models import cnn, resnet

    if args.arch == "resnet":
        return resnet.ResNet(num_classes, tuple(args.widths), tuple(args.depths))
    stages = [[w] * d for w, d in zip(args.widths, args.depths)]
    return cnn.VGG(num_classes, stages, dropout=args.dropout)


def parser():
    p = common.parser("cnn", __doc__.splitlines()[0], epochs=10, batch_size=128, lr=3e-3)
    image_classifier.add_flags(p, augment="crop+flip", weight_decay=0.05, warmup=0.05, label_smoothing=0.1,
                               ynn="on", tta="flip")
    p.add_argument("--arch", choices=("vgg", "resnet"), default="vgg")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128], help="features per stage")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 2],
                   help="convolutions (vgg) or basic blocks (resnet) per stage")
    p.add_argument("--dropout", type=float, default=0.0, help="vgg: drop rate before the dense head")
    flagcheck.at_least(p, 1, "--widths", "--depths")
    flagcheck.rule(p, "--depths", lambda a: f"{len(a.widths)} entries (one per --widths entry)",
                   lambda v, a: len(v) == len(a.widths))
    flagcheck.rate(p, "--dropout")
    return p


def main(args):
    return image_classifier.main(args, make_model, saliency=True)


if __name__ == "__main__":
    common.run(main, parser())
