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
import functools
import json
import time

import common
import flagcheck

EVAL_BATCH = 500


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
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.data import channel_stats, image_batches, load, stream_channel_stats
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.models import cnn, resnet
    from deepcore.train import (classifier_eval, classifier_loss, evaluate_split, fit, init_state, parallel,
                                predict, train_step)
    from deepcore.train.budget import last_checkpointed
    from deepcore.train.compile_options import YNN_FUSION

    # data: uint8 images and int32 labels (with --smoke the first examples of each split)
    splits = load(args.dataset, ("validation", "test"), data_dir=args.data_dir)
    info = splits[0].info
    val, test = ({k: v[:flagcheck.IMAGE_SMOKE[s] if args.smoke else None] for k, v in ds.arrays.items()}
                 for ds, s in zip(splits, ("validation", "test")))
    pipe = image_batches(args.input, args.dataset, "train", args.batch_size, args.seed, data_dir=args.data_dir,
                         max_examples=flagcheck.IMAGE_SMOKE["train"] if args.smoke else None, process_index=0,
                         process_count=1)   # --input stream: read from disk by Grain, never held in memory
    if args.batch_size > pipe.num_examples:  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {pipe.num_examples} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if args.tta == "flip" and len(info.shape) != 3:
        raise common.UsageError(f"--tta flip needs images (height, width, channels); {args.dataset} gives {info.shape}")
    devs = common.devices(args.devices)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32

    # model: normalise, augment (in training) and cast inside the compiled step, then the network
    if args.arch == "resnet":
        net = resnet.ResNet(info.num_classes, tuple(args.widths), tuple(args.depths))
    else:
        net = cnn.VGG(info.num_classes, [[w] * d for w, d in zip(args.widths, args.depths)], dropout=args.dropout)
    mean, std = channel_stats(pipe.arrays["image"]) if args.input == "memory" else stream_channel_stats(pipe)
    model = serial({"prep": Preprocess(mean, std, augmentation(args.augment, info.shape[0]), cdt), "net": net})

    # optimiser: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000
    steps = common.num_steps(args, pipe.steps_per_epoch, smoke_steps=6)
    every = max(1, round(args.eval_every * pipe.steps_per_epoch)) if not args.smoke else max(1, steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(1, int(args.warmup * steps)), max(steps, 2),
                                                  end_value=args.lr * 1e-3)
    tx = optax.adamw(schedule, weight_decay=args.weight_decay, mask=tree.decay_mask)

    # step: label-smoothed cross-entropy, data-parallel over the devices (or --mesh by --rules)
    spec = jax.ShapeDtypeStruct((args.batch_size,) + info.shape, jnp.uint8)
    state, mesh, shardings, wrap_loss, put = common.mesh_plan(args, devs, model, spec, tx,
                                                              init_state(model, spec, tx, args.seed))
    options = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    step = train_step(wrap_loss(classifier_loss(model, x="image", y="label", label_smoothing=args.label_smoothing)),
                      tx, compute_dtype=None if cdt == jnp.float32 else cdt, grad_norm=False, compiler_options=options,
                      **shardings)

    # evaluation: exact over whole splits, eval mode in the compute dtype (mirror-averaged with --tta flip)
    logits, per_example = classifier_eval(model, compute_dtype=None if cdt == jnp.float32 else cdt,
                                          tta=args.tta == "flip")
    evaluate = functools.partial(evaluate_split, per_example, batch_size=EVAL_BATCH, mesh=mesh,
                                 compiler_options=options)
    offset = last_checkpointed(args.out, "val_wall_s") if args.resume else 0.0
    clock = lambda: offset + time.perf_counter() - t_start   # seconds of this run, over resumed segments

    # the loop: fit, evaluating the whole validation split (and timing it) every --eval-every epochs; then the report
    n_params = tree.param_count(state.params)
    print(f"{args.experiment}: {n_params:,} parameters, {pipe.num_examples} train / {len(val['label'])} validation "
          f"/ {len(test['label'])} test examples of {args.dataset}, {steps} steps of {args.batch_size} on "
          f"{len(devs)} {devs[0].platform} device(s), {args.precision}", flush=True)
    result = fit(step, state, pipe.batches, steps=steps, eval_batches=lambda: [None], eval_every=every,
                 eval_step=lambda state, _: {"wall_s": clock(), **evaluate(val, args=(state,))},
                 out_dir=args.out, checkpoint_every=every, resume=args.resume, log_every=max(1, min(100, every)),
                 put_batch=put)
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    run = dict(evaluate(test, args=(result.state,), prefix="test_"), wall_s=clock(), parameters=n_params)
    probs = predict(lambda s, x: jax.nn.softmax(logits(s, x), -1), test["image"], EVAL_BATCH, args=(result.state,),
                    mesh=mesh)
    return report(args, result, model, info, test, run, probs)


def report(args, result, model, info, test, run: dict, probs):
    """results.json, curves.png, calibration.json, reliability.png and saliency.png of the trained ``model``;
    ``run``: the test metrics, ``wall_s`` and ``parameters``; ``probs``: the test split's class probabilities."""
    from deepcore.interpret import classifier_files, training_curves
    from deepcore.train import eval_summary, read_metrics

    summary = eval_summary(read_metrics(args.out))
    rate = summary.pop("train_examples_per_s")
    metrics = {"test_accuracy": run["test_accuracy"], "test_loss_nats": run["test_loss"], **summary}
    training_curves(args.out)
    state = result.state   # saliency.png: |d logit(true class) / d pixel| of 8 test images
    logits = lambda x: model.apply(state.params, state.model_state, x)[0]   # noqa: E731
    metrics.update(classifier_files(args.out, probs, test["label"], info.class_names,
                                    logits_fn=logits, images=test["image"]))
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=run["wall_s"], steps=result.step,
                               train_examples_per_s=rate,
                               extra={"parameters": run["parameters"], "stop_reason": result.stop_reason})
    print(json.dumps({"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                      "wall_s": res["wall_s"], "steps": result.step, "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
