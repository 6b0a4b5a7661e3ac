"""Row-by-row Fashion-MNIST with an LSTM or GRU: each image is a sequence of 28 rows of 28 pixels.

    python experiments/seq_classify.py             # the BUILD_NOTES.md run: >= 88% test accuracy within 15 minutes
    python experiments/seq_classify.py --cell gru
    python experiments/seq_classify.py --smoke --out /tmp/seq

Model: normalised rows (B, 28, 28) -> one LSTM layer of 128 units -> its state after the last row -> dense 10.
Training: AdamW(2e-3) with warm-up + cosine decay over 20 epochs of batches of 128, no augmentation. Exact
validation every epoch with the wall-clock time of each evaluation (val_accuracy_at_15min), test accuracy and
calibration at the end. Writes results.json, metrics.jsonl, checkpoints, curves.png, calibration.json and
reliability.png.
"""
import functools
import json
import os
import time

import common
import flagcheck
import images

EVAL_BATCH = 500


def parser():
    p = common.parser("seq_classify", __doc__.splitlines()[0], epochs=20, batch_size=128, lr=2e-3)
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=128, help="units per recurrent layer")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--bidirectional", action="store_true", help="read the rows both ways (2x the cost)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay (kernels)")
    p.add_argument("--warmup", type=float, default=0.02, help="linear warm-up, as a fraction of all steps")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--eval-every", type=float, default=1.0, help="evaluate (and checkpoint) every this many epochs")
    flagcheck.at_least(p, 1, "--hidden", "--layers")
    flagcheck.at_least(p, 0, "--weight-decay")
    flagcheck.above(p, 0, "--eval-every")
    flagcheck.rate(p, "--warmup")
    flagcheck.rate(p, "--label-smoothing")
    flagcheck.rule(p, "--batch-size", f"at most {flagcheck.IMAGE_SMOKE['train']} with --smoke (its training slice)",
                   lambda v, a: not a.smoke or v <= flagcheck.IMAGE_SMOKE["train"])
    flagcheck.image_dataset(p)
    return p


def splits(args):
    """``(info, train, val, test)``: uint8 images and int32 labels (with --smoke the first examples of each split),
    checked against --batch-size and for one channel."""
    import numpy as np

    info, *arrays = images.load_splits(args, ("train", "validation", "test"))
    train, val, test = ({k: np.asarray(v, np.int32 if k == "label" else None) for k, v in a.items()} for a in arrays)
    if args.batch_size > len(train["label"]):  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {len(train['label'])} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if tuple(info.shape[-1:]) != (1,):
        raise common.UsageError(f"--dataset {args.dataset}: rows of a one-channel image are needed, got images "
                                f"of shape {tuple(info.shape)}")
    return info, train, val, test


def eval_pipeline(arrays, batch_size):
    """Every example once in padded batches, weight = mask * batches / N: the sums over batches are exact means."""
    import numpy as np

    from deepcore.data import make_batches

    n, nb = len(arrays["label"]), -(-len(arrays["label"]) // batch_size)
    weigh = lambda b: dict(b, weight=b.pop("mask").astype(np.float32) * np.float32(nb / n))  # noqa: E731
    return make_batches(arrays, batch_size, shuffle=False, drop_remainder=False, pad_remainder=True,
                        num_epochs=1, process_index=0, process_count=1, transform=weigh)


def evaluation(model, cdt, shardings, mesh):
    """``(logits, eval_fn)``: eval-mode float32 logits in the compute dtype, and the compiled weighted sums of
    loss and accuracy over one ``eval_pipeline`` batch."""
    import jax.numpy as jnp
    import optax

    from deepcore.core import cast
    from deepcore.train import compile_fn, parallel

    def logits(state, images):  # eval mode in the compute dtype, float32 logits
        params = state.params if cdt == jnp.float32 else cast(state.params, cdt)
        return model.apply(params, state.model_state, images, train=False)[0].astype(jnp.float32)

    def eval_metrics(state, batch):
        out, w = logits(state, batch["image"]), batch["weight"]
        xent = optax.softmax_cross_entropy_with_integer_labels(out, batch["label"])
        return {"loss": jnp.sum(w * xent), "accuracy": jnp.sum(w * (jnp.argmax(out, -1) == batch["label"]))}

    return logits, compile_fn(eval_metrics, in_shardings=(shardings["state_sharding"], shardings["batch_sharding"]),
                              out_shardings=parallel.replicated(mesh))


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from deepcore import layers as L
    from deepcore.data import channel_stats, make_batches, normalize
    from deepcore.models.rnn import seq_classifier
    from deepcore.train import classifier_loss, fit, init_state, parallel, train_step
    from deepcore.train.budget import last_checkpointed

    if args.smoke:
        args.hidden = min(args.hidden, 32)
    # data: uint8 images, int32 labels; training batches, the exact evaluation batches
    info, train, val, test = splits(args)
    devs, cdt = images.devices(args)
    mesh = parallel.make_mesh(devs)
    put = functools.partial(parallel.shard_batch, mesh=mesh)
    pipe = make_batches(train, args.batch_size, seed=args.seed, process_index=0, process_count=1)
    eval_bs = -(-EVAL_BATCH // args.devices) * args.devices
    val_pipe, test_pipe = eval_pipeline(val, eval_bs), eval_pipeline(test, eval_bs)

    # model: normalised rows (B, H steps, W features) -> the recurrent classifier
    mean, std = channel_stats(train["image"])
    prep = L.Lambda(lambda x: normalize(x, mean, std).astype(cdt), name="preprocess")
    rows = L.Lambda(lambda x: x[..., 0], name="rows")
    net = seq_classifier(info.num_classes, hidden=args.hidden, cell=args.cell, num_layers=args.layers,
                         bidirectional=args.bidirectional)
    model = L.serial({"prep": prep, "net": L.serial({"rows": rows, "rnn": net})})

    # optimiser: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000
    steps, every, tx = images.adamw_cosine(args, pipe.steps_per_epoch)

    # step: cross-entropy, data-parallel over the mesh; evaluation: exact weighted sums, timed
    state = init_state(model, jax.ShapeDtypeStruct((args.batch_size,) + info.shape, jnp.uint8), tx, args.seed)
    shardings = parallel.step_shardings(state, mesh)
    state = parallel.place_state(state, shardings["state_sharding"])
    step = train_step(classifier_loss(model, x="image", y="label", label_smoothing=args.label_smoothing), tx,
                      compute_dtype=None if cdt == jnp.float32 else cdt, grad_norm=False, **shardings)
    logits, eval_fn = evaluation(model, cdt, shardings, mesh)
    offset = last_checkpointed(args.out, "val_wall_s") if args.resume else 0.0
    clock = {"at": 0.0}   # seconds of this run (over resumed segments) when the evaluation began

    def val_batches():
        clock["at"] = offset + time.perf_counter() - t_start
        return val_pipe.batches(0)

    # the loop
    n_params = images.announce(args, state, len(train["label"]), val, test, steps, devs)
    result = fit(step, state, pipe.batches, steps=steps, eval_batches=val_batches, eval_every=every,
                 eval_step=lambda state, batch: dict(eval_fn(state, batch), wall_s=np.float64(clock["at"])),
                 out_dir=args.out, checkpoint_every=every, resume=args.resume, put_batch=put,
                 log_every=max(1, min(100, every)))
    return report(args, result, info, test, test_pipe, logits=logits, eval_fn=eval_fn, put=put, n_params=n_params,
                  clock=lambda: offset + time.perf_counter() - t_start)


def report(args, result, info, test, test_pipe, *, logits, eval_fn, put, n_params: int, clock):
    """Test metrics, the accuracy reached by 5 / 10 / 15 minutes, calibration.json, reliability.png, curves.png
    and results.json. A non-finite stop is one line (exit 2)."""
    import jax
    import numpy as np

    from deepcore.interpret import classifier_report, reliability_diagram, training_curves
    from deepcore.train import evaluate, read_metrics

    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    state = result.state
    test_metrics = evaluate(eval_fn, state, test_pipe.batches(0), put, prefix="test_")
    wall = clock()
    records = read_metrics(args.out)
    vals = [r for r in records if r.get("split") == "val"]
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = {"test_accuracy": test_metrics["test_accuracy"], "test_loss_nats": test_metrics["test_loss"],
               "val_accuracy": vals[-1]["val_accuracy"] if vals else None,
               "val_loss_nats": vals[-1]["val_loss"] if vals else None}
    for minutes in (5, 10, 15):
        done = [r["val_accuracy"] for r in vals if r.get("val_wall_s", float("inf")) <= 60 * minutes]
        metrics[f"val_accuracy_at_{minutes}min"] = done[-1] if done else None
    training_curves(args.out)
    probs_fn = jax.jit(lambda state, images: jax.nn.softmax(logits(state, images), -1))
    probs = np.concatenate([np.asarray(probs_fn(state, test["image"][i:i + EVAL_BATCH]))
                            for i in range(0, len(test["label"]), EVAL_BATCH)])
    cal = classifier_report(probs, test["label"], num_classes=len(info.class_names))
    with open(os.path.join(args.out, "calibration.json"), "w") as f:
        json.dump(dict(cal, class_names=list(info.class_names)), f, indent=1)
    reliability_diagram(os.path.join(args.out, "reliability.png"), probs, test["label"],
                        title=f"test split: accuracy {cal['accuracy']:.4f}, ECE {cal['ece']:.4f}")
    metrics.update({"test_ece": cal["ece"], "test_mce": cal["mce"], "test_nll_nats": cal["nll_nats"],
                    "test_worst_class_accuracy": min(cal["per_class_accuracy"])})
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=wall, steps=result.step,
                               train_examples_per_s=rates[-1] if rates else None,
                               extra={"parameters": n_params, "stop_reason": result.stop_reason})
    print(json.dumps({"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                      "wall_s": res["wall_s"], "steps": result.step, "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
