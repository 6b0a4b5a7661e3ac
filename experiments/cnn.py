"""A convolutional network on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset): compact VGG or a ResNet.

    python experiments/cnn.py                      # the BUILD_NOTES.md run (target: 93.5% test accuracy in 15 min)
    python experiments/cnn.py --arch resnet --smoke --out /tmp/cnn
    python experiments/cnn.py --devices 4 --mesh data=2,tensor=2   # sharded by the rules (deepcore.train.sharding)

Model (--arch vgg): [conv3x3 32]-pool-[conv3x3 64 x2]-pool-[conv3x3 128 x2]-global average pool-dense 10, each
conv followed by BatchNorm and ReLU. --arch resnet: a ResNet with basic blocks (--widths, --depths).
Training: random crops (after padding) and flips, AdamW with warm-up + cosine decay, label smoothing, steps
compiled with XLA's YNNPACK fusion on CPUs; evaluation averages each image with its mirror (--tta flip).
Writes results.json, metrics.jsonl, checkpoints, curves.png, calibration.json, reliability.png and saliency.png
(input-gradient maps of test images). Every evaluation record carries ``val_wall_s``, the seconds since the run
started (summed over resumed segments), so the accuracy reached after 5, 10 or 15 minutes can be read off.
"""
import time

import common
import flagcheck
import images


def parser():
    p = common.parser("cnn", __doc__.splitlines()[0], epochs=10, batch_size=128, lr=3e-3)
    flagcheck.image_flags(p, augment="crop+flip", weight_decay=0.05, warmup=0.05, label_smoothing=0.1, ynn="on",
                       tta="flip")
    p.add_argument("--arch", choices=("vgg", "resnet"), default="vgg")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128], help="features per stage")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 2],
                   help="convolutions (vgg) or basic blocks (resnet) per stage")
    p.add_argument("--dropout", type=float, default=0.0, help="vgg: drop rate before the dense head")
    p.add_argument("--input", choices=("memory", "stream"), default="memory",
                   help="training batches from arrays in memory, or streamed from the prepared files on disk "
                        "(Grain; the same batch at every step)")
    flagcheck.at_least(p, 1, "--widths", "--depths")
    flagcheck.rule(p, "--depths", lambda a: f"{len(a.widths)} entries (one per --widths entry)",
                   lambda v, a: len(v) == len(a.widths))
    flagcheck.rate(p, "--dropout")
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    from deepcore.data import channel_stats, image_batches, stream_channel_stats
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.models import cnn, resnet
    from deepcore.train import fit

    # data: uint8 images and int32 labels (with --smoke the first examples of each split)
    info, val, test = images.load_splits(args, ("validation", "test"))
    pipe = image_batches(args.input, args.dataset, "train", args.batch_size, args.seed, data_dir=args.data_dir,
                         max_examples=flagcheck.IMAGE_SMOKE["train"] if args.smoke else None, process_index=0,
                         process_count=1)   # --input stream: read from disk by Grain, never held in memory
    images.check_data(args, info, pipe.num_examples)
    devs, cdt = images.devices(args)

    # model: normalise, augment (in training) and cast inside the compiled step, then the network
    if args.arch == "resnet":
        net = resnet.ResNet(info.num_classes, tuple(args.widths), tuple(args.depths))
    else:
        net = cnn.VGG(info.num_classes, [[w] * d for w, d in zip(args.widths, args.depths)], dropout=args.dropout)
    mean, std = channel_stats(pipe.arrays["image"]) if args.input == "memory" else stream_channel_stats(pipe)
    model = serial({"prep": Preprocess(mean, std, augmentation(args.augment, info.shape[0]), cdt), "net": net})

    # optimiser: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000
    steps, every, tx = images.adamw_cosine(args, pipe.steps_per_epoch)

    # step: label-smoothed cross-entropy, data-parallel (or --mesh by --rules); evaluation: exact over whole splits
    state, step, options, mesh, put = images.classifier_step(args, model, info, tx, devs, cdt)
    ev = images.evaluation(args, model, mesh, cdt, options, t_start)

    # the loop: fit, evaluating the whole validation split (and timing it) every --eval-every epochs; then the report
    n_params = images.announce(args, state, pipe.num_examples, val, test, steps, devs)
    result = fit(step, state, pipe.batches, steps=steps, eval_step=ev.eval_step(val), eval_batches=lambda: [None],
                 eval_every=every, out_dir=args.out, checkpoint_every=every, resume=args.resume,
                 log_every=max(1, min(100, every)), put_batch=put)
    return images.report(args, result, model, info, test, ev, n_params=n_params, saliency=True)


if __name__ == "__main__":
    common.run(main, parser())
