"""A multilayer perceptron on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset).

    python experiments/mlp.py                      # the BUILD_NOTES.md run: >= 90% test accuracy in 5 minutes
    python experiments/mlp.py --smoke --out /tmp/mlp

Model: flatten -> [dense 1024 -> ReLU -> dropout] x 2 -> dense 10, AdamW with warm-up + cosine decay,
label smoothing, random left-right flips. Writes results.json, metrics.jsonl, checkpoints, curves.png,
calibration.json and reliability.png. Every evaluation record carries ``val_wall_s``, the seconds since the run
started (summed over resumed segments), so the accuracy reached after 5, 10 or 15 minutes can be read off.
"""
import time

import common
import flagcheck
import images


def parser():
    p = common.parser("mlp", __doc__.splitlines()[0], epochs=40, batch_size=256, lr=2e-3)
    flagcheck.image_flags(p, augment="flip", weight_decay=0.02, warmup=0.02, label_smoothing=0.1, ynn="off")
    p.add_argument("--widths", type=int, nargs="+", default=[1024, 1024], help="hidden layer sizes")
    p.add_argument("--dropout", type=float, default=0.3, help="drop rate after each hidden layer")
    flagcheck.at_least(p, 1, "--widths")
    flagcheck.rate(p, "--dropout")
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    from deepcore.data import channel_stats, make_batches
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.models import mlp
    from deepcore.train import fit

    # data: uint8 images and int32 labels (with --smoke the first examples of each split)
    info, train, val, test = images.load_splits(args, ("train", "validation", "test"))
    images.check_data(args, info, len(train["label"]))
    devs, cdt = images.devices(args)

    # model: normalise, augment (in training) and cast inside the compiled step, then the network
    net = mlp.MLP(info.num_classes, tuple(args.widths), dropout=args.dropout, feature_dims=len(info.shape))
    mean, std = channel_stats(train["image"])
    model = serial({"prep": Preprocess(mean, std, augmentation(args.augment, info.shape[0]), cdt), "net": net})

    # optimiser: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000
    pipe = make_batches(train, args.batch_size, seed=args.seed, process_index=0, process_count=1)
    steps, every, tx = images.adamw_cosine(args, pipe.steps_per_epoch)

    # step: label-smoothed cross-entropy, data-parallel (or --mesh by --rules); evaluation: exact over whole splits
    state, step, options, mesh, put = images.classifier_step(args, model, info, tx, devs, cdt)
    ev = images.evaluation(args, model, mesh, cdt, options, t_start)

    # the loop: fit, evaluating the whole validation split (and timing it) every --eval-every epochs; then the report
    n_params = images.announce(args, state, len(train["label"]), val, test, steps, devs)
    result = fit(step, state, pipe.batches, steps=steps, eval_step=ev.eval_step(val), eval_batches=lambda: [None],
                 eval_every=every, out_dir=args.out, checkpoint_every=every, resume=args.resume,
                 log_every=max(1, min(100, every)), put_batch=put)
    return images.report(args, result, model, info, test, ev, n_params=n_params, saliency=False)


if __name__ == "__main__":
    common.run(main, parser())
