"""A multilayer perceptron on Fashion-MNIST (or MNIST, CIFAR-10 with --dataset).

    python experiments/mlp.py                      # the BUILD_NOTES.md run: >= 90% test accuracy in 5 minutes
    python experiments/mlp.py --smoke --out /tmp/mlp

Model: flatten -> [dense 1024 -> ReLU -> dropout] x 2 -> dense 10, AdamW with warm-up + cosine decay,
label smoothing, random left-right flips. Writes results.json, metrics.jsonl, checkpoints, curves.png,
calibration.json and reliability.png. Every evaluation record carries ``val_wall_s``, the seconds since the run
started (summed over resumed segments), so the accuracy reached after 5, 10 or 15 minutes can be read off.
"""
import functools
import json
import time

import common
import flagcheck

EVAL_BATCH = 500


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
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.data import channel_stats, load, make_batches
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.models import mlp
    from deepcore.train import (classifier_eval, classifier_loss, evaluate_split, fit, init_state, parallel,
                                predict, train_step)
    from deepcore.train.budget import last_checkpointed
    from deepcore.train.compile_options import YNN_FUSION

    # data: uint8 images and int32 labels (with --smoke the first examples of each split)
    splits = load(args.dataset, ("train", "validation", "test"), data_dir=args.data_dir)
    info = splits[0].info
    train, val, test = ({k: v[:flagcheck.IMAGE_SMOKE[s] if args.smoke else None] for k, v in ds.arrays.items()}
                        for ds, s in zip(splits, flagcheck.IMAGE_SMOKE))
    if args.batch_size > len(train["label"]):  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {len(train['label'])} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if args.tta == "flip" and len(info.shape) != 3:
        raise common.UsageError(f"--tta flip needs images (height, width, channels); {args.dataset} gives {info.shape}")
    devs = common.devices(args.devices)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32

    # model: normalise, augment (in training) and cast inside the compiled step, then the network
    net = mlp.MLP(info.num_classes, tuple(args.widths), dropout=args.dropout, feature_dims=len(info.shape))
    mean, std = channel_stats(train["image"])
    model = serial({"prep": Preprocess(mean, std, augmentation(args.augment, info.shape[0]), cdt), "net": net})

    # optimiser: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000
    pipe = make_batches(train, args.batch_size, seed=args.seed, process_index=0, process_count=1)
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
    print(f"{args.experiment}: {n_params:,} parameters, {len(train['label'])} train / {len(val['label'])} validation "
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
    """results.json, curves.png, calibration.json, reliability.png of the trained ``model``;
    ``run``: the test metrics, ``wall_s`` and ``parameters``; ``probs``: the test split's class probabilities."""
    from deepcore.interpret import classifier_files, training_curves
    from deepcore.train import eval_summary, read_metrics

    summary = eval_summary(read_metrics(args.out))
    rate = summary.pop("train_examples_per_s")
    metrics = {"test_accuracy": run["test_accuracy"], "test_loss_nats": run["test_loss"], **summary}
    training_curves(args.out)
    metrics.update(classifier_files(args.out, probs, test["label"], info.class_names))
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=run["wall_s"], steps=result.step,
                               train_examples_per_s=rate,
                               extra={"parameters": run["parameters"], "stop_reason": result.stop_reason})
    print(json.dumps({"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                      "wall_s": res["wall_s"], "steps": result.step, "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
