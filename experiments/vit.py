"""A small vision transformer on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset).

    python experiments/vit.py                      # the BUILD_NOTES.md run: test accuracy after 15 minutes
    python experiments/vit.py --pool mean          # average the patch tokens instead of a class token
    python experiments/vit.py --smoke --out /tmp/vit

Model (deepcore.models.vit.ViT): 4x4 patches (49 tokens at 28x28) projected to width 96, a class token
(--pool cls) or mean pooling (--pool mean), learned positions, 4 pre-LayerNorm blocks (4 heads, 2x exact-GELU
MLP, scanned over layers), a final LayerNorm and a dense head: 0.31M parameters. 5 epochs of batches of 128
are sized for about 15 minutes on 2 CPU cores (val_accuracy_at_15min is recorded either way). Training is the
recipe of mlp.py and cnn.py: random crops and flips, AdamW with warm-up + cosine decay, label smoothing, exact
evaluation over whole splits. Writes results.json, metrics.jsonl, checkpoints, curves.png, calibration.json,
reliability.png and saliency.png. Every evaluation record carries ``val_wall_s`` (seconds since the start).
"""
import time

import common
import flagcheck
import images


def parser():
    p = common.parser("vit", __doc__.splitlines()[0], epochs=5, batch_size=128, lr=2e-3)
    flagcheck.image_flags(p, augment="crop+flip", weight_decay=0.05, warmup=0.05, label_smoothing=0.1, ynn="off")
    p.add_argument("--patch-size", type=int, default=4, help="side of the square patches (must divide H and W)")
    p.add_argument("--d-model", type=int, default=96, help="token width")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d-model must be divisible by it)")
    p.add_argument("--mlp-ratio", type=int, default=2, help="MLP hidden width as a multiple of d-model")
    p.add_argument("--pool", choices=("cls", "mean"), default="cls", help="class token or mean of the tokens")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings and residual branches")
    flagcheck.at_least(p, 1, "--patch-size")
    flagcheck.transformer_rules(p)
    flagcheck.mesh_flags(p)
    return p


def main(args):
    t_start = time.perf_counter()
    flagcheck.smoke_size(args)   # --smoke: width <= 32, <= 2 layers, <= 2 heads
    from deepcore.data import channel_stats, make_batches
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.models.vit import ViT
    from deepcore.train import fit

    # data: uint8 images and int32 labels (with --smoke the first examples of each split)
    info, train, val, test = images.load_splits(args, ("train", "validation", "test"))
    images.check_data(args, info, len(train["label"]))
    devs, cdt = images.devices(args)

    # model: normalise, augment (in training) and cast inside the compiled step, then the network
    if info.shape[0] % args.patch_size or info.shape[1] % args.patch_size:
        raise common.UsageError(f"--patch-size {args.patch_size} must divide the {info.shape[0]}x{info.shape[1]} "
                                f"images of {args.dataset}")
    net = ViT(info.num_classes, patch_size=args.patch_size, d_model=args.d_model, num_layers=args.layers,
              num_heads=args.heads, pool=args.pool, mlp_ratio=args.mlp_ratio, dropout=args.dropout)
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
    return images.report(args, result, model, info, test, ev, n_params=n_params, saliency=True)


if __name__ == "__main__":
    common.run(main, parser())
