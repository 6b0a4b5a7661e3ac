"""The recipe shared by ``mlp.py`` and ``cnn.py``: image data, augmentation, AdamW with warmup + cosine,
data-parallel training with ``deepcore.train.fit``, exact batched evaluation, results and pictures.

A script supplies ``make_model(num_classes, image_shape, args)`` and its defaults; :func:`main` does the rest.
Every evaluation record in ``metrics.jsonl`` carries ``val_wall_s``: seconds since the run started (summed
over resumed segments), so the accuracy reached after 5 or 10 minutes can be read off.
"""
from __future__ import annotations

import functools
import json
import os
import time

import common
import flagcheck

SMOKE_EXAMPLES = {"train": 512, "validation": 256, "test": 256}
EVAL_BATCH = 500
YNN_FUSION = {"xla_cpu_experimental_ynn_fusion_type":
              "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"}


def add_flags(p, *, augment: str, weight_decay: float, warmup: float, label_smoothing: float, ynn: str,
              tta: str = "none"):
    """Flags of the image-classifier recipe (on top of :func:`common.parser`'s)."""
    p.add_argument("--augment", default=augment,
                   help="training augmentation: 'none' or '+'-joined 'crop' (random crop after padding, 2 px at "
                        "28x28, 4 px at 32x32) and 'flip' (left-right)")
    p.add_argument("--weight-decay", type=float, default=weight_decay, help="AdamW decoupled weight decay")
    p.add_argument("--warmup", type=float, default=warmup, help="linear warm-up, as a fraction of all steps")
    p.add_argument("--label-smoothing", type=float, default=label_smoothing)
    p.add_argument("--tta", choices=("none", "flip"), default=tta,
                   help="test-time augmentation of every evaluation: 'flip' averages the class probabilities of "
                        "each image and its left-right mirror")
    p.add_argument("--eval-every", type=float, default=1.0, help="evaluate (and checkpoint) every this many epochs")
    p.add_argument("--ynn-fusion", choices=("on", "off"), default=ynn,
                   help="on a CPU, compile the steps with XLA's YNNPACK fusion (faster convolutions)")
    add_rules(p)
    return p


def add_rules(p):
    """Values of the recipe's flags checked at parse time (:mod:`flagcheck`)."""
    flagcheck.above(p, 0, "--eval-every")
    flagcheck.rate(p, "--warmup")
    flagcheck.rate(p, "--label-smoothing")
    flagcheck.at_least(p, 0, "--weight-decay")
    flagcheck.rule(p, "--augment", "'none' or '+'-joined distinct 'crop' and 'flip'", lambda v, a: _augment_ok(v))
    flagcheck.rule(p, "--batch-size", f"at most {SMOKE_EXAMPLES['train']} with --smoke (its training slice)",
                   lambda v, a: not a.smoke or v <= SMOKE_EXAMPLES["train"])
    flagcheck.image_dataset(p)


def _augment_ok(spec: str) -> bool:
    parts = [] if spec == "none" else spec.split("+")
    return all(x in ("crop", "flip") for x in parts) and len(set(parts)) == len(parts)


def _augmenter(spec: str, image_size: int):
    from deepcore.data import batched, compose, random_crop, random_flip

    parts = [] if spec == "none" else spec.split("+")  # checked at parse time (add_rules)
    fns = {"crop": functools.partial(random_crop, padding=2 if image_size <= 28 else 4), "flip": random_flip}
    return batched(compose(*(fns[x] for x in parts))) if parts else None


def Preprocess(mean, std, augment, dtype):
    """A layer: uint8 images -> normalised ``dtype`` images, augmented in train mode (needs the step key)."""
    from deepcore.core import layer, require_key, simple_init
    from deepcore.data import normalize

    def apply(params, state, x, *, key=None, train=False):
        x = normalize(x, mean, std)
        if train and augment is not None:
            x = augment(require_key(key, "augment"), x)
        return x.astype(dtype), state

    return layer("preprocess", simple_init(lambda key, spec: ({}, {}), apply), apply)


def _load(args):
    import numpy as np
    from deepcore.data import load

    splits = load(args.dataset, ("train", "validation", "test"), data_dir=args.data_dir)
    arrays = [ds.arrays for ds in splits]
    if args.smoke:
        arrays = [{k: v[:SMOKE_EXAMPLES[s]] for k, v in a.items()} for a, s in zip(arrays, SMOKE_EXAMPLES)]
    for a in arrays:
        a["label"] = np.asarray(a["label"], np.int32)
    return splits[0].info, arrays


def _eval_pipeline(arrays, batch_size):
    """Every example once; each batch carries ``weight = mask * num_batches / N``, so the mean over batches of
    ``sum(weight * metric)`` is the exact mean over the N examples (padding weighs nothing)."""
    import numpy as np
    from deepcore.data import make_batches

    n = len(arrays["label"])
    nb = -(-n // batch_size)

    def weigh(b):
        mask = b.pop("mask")
        return dict(b, weight=mask.astype(np.float32) * np.float32(nb / n))

    return make_batches(arrays, batch_size, shuffle=False, drop_remainder=False, pad_remainder=True, num_epochs=1,
                        process_index=0, process_count=1, transform=weigh)


def flip_averaged(logits_fn):
    """Flip test-time augmentation: ``images (N, H, W, C) -> (N, classes)`` log of the mean of the class
    probabilities that ``logits_fn`` gives each image and its left-right mirror."""
    import jax
    import jax.numpy as jnp

    def apply(images):
        views = jnp.stack([jax.nn.log_softmax(logits_fn(images)), jax.nn.log_softmax(logits_fn(images[:, :, ::-1]))])
        return jax.nn.logsumexp(views, axis=0) - jnp.log(2.0)

    return apply


def accuracy_at(records, seconds: float):
    """Validation accuracy of the last evaluation finished by ``seconds`` of wall time (None if none was)."""
    done = [r for r in records if r.get("split") == "val" and r.get("val_wall_s", float("inf")) <= seconds]
    return done[-1]["val_accuracy"] if done else None


def input_saliency(apply, params, state, images, labels):
    """``|d logit[label] / d image|`` (max over channels): ``(N, H, W, C) -> (N, H, W)``."""
    import jax
    import jax.numpy as jnp

    def true_logit(x, y):
        logits, _ = apply(params, state, x[None], train=False)
        return logits[0, y].astype(jnp.float32)

    g = jax.vmap(jax.grad(true_logit))(images, labels)
    return jnp.max(jnp.abs(g), axis=-1)


def plot_saliency(path, images, maps, labels, preds, class_names):
    """Images (top row) over their saliency maps (bottom row), titled true / predicted class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for i in range(n):
        img = np.asarray(images[i], np.float32)
        img = (img - img.min()) / (np.ptp(img) + 1e-8)
        axes[0, i].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        axes[0, i].set_title(f"{class_names[labels[i]]}\n-> {class_names[preds[i]]}", fontsize=7,
                             color="black" if labels[i] == preds[i] else "red")
        axes[1, i].imshow(np.asarray(maps[i]), cmap="hot")
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle("input-gradient saliency |d logit(true class) / d input|", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration(logits_fn, state, test, out_dir, class_names) -> dict:
    """Bias and calibration on the test split from ``logits_fn(state, images) -> float32 logits``:
    ``calibration.json`` (accuracy, ECE, MCE, NLL, per-class accuracy, confusion matrix with rows = true class)
    and ``reliability.png``. Returns the report."""
    import jax
    import numpy as np

    from deepcore.interpret import classifier_report, reliability_diagram

    probs_fn = jax.jit(lambda state, images: jax.nn.softmax(logits_fn(state, images), -1))

    images, labels = test["image"], test["label"]
    probs = np.concatenate([np.asarray(probs_fn(state, images[i:i + EVAL_BATCH]))
                            for i in range(0, len(labels), EVAL_BATCH)])
    report = classifier_report(probs, labels, num_classes=len(class_names))
    with open(os.path.join(out_dir, "calibration.json"), "w") as f:
        json.dump(dict(report, class_names=list(class_names)), f, indent=1)
    reliability_diagram(os.path.join(out_dir, "reliability.png"), probs, labels,
                        title=f"test split: accuracy {report['accuracy']:.4f}, ECE {report['ece']:.4f}")
    return report


def main(args, make_model, *, saliency: bool = False) -> dict:
    """Train ``make_model(num_classes, image_shape, args)`` on ``args.dataset``; write the run's files."""
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from deepcore import tree
    from deepcore.core import cast
    from deepcore.data import channel_stats, make_batches
    from deepcore.layers import serial
    from deepcore.train import classifier_loss, compile_fn, evaluate, fit, init_state, parallel, train_step

    offset = common.last_checkpointed(args.out, "val_wall_s") if args.resume else 0.0
    info, (train, val, test) = _load(args)
    if args.batch_size > len(train["label"]):  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {len(train['label'])} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if args.tta == "flip" and len(info.shape) != 3:
        raise common.UsageError(f"--tta flip needs images (height, width, channels); {args.dataset} gives {info.shape}")
    devs = common.devices(args.devices)
    mesh = parallel.make_mesh(devs)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32

    mean, std = channel_stats(train["image"])
    augment = _augmenter(args.augment, info.shape[0])
    net = make_model(info.num_classes, info.shape, args)
    model = serial({"prep": Preprocess(mean, std, augment, cdt), "net": net})

    pipe = make_batches(train, args.batch_size, seed=args.seed, process_index=0, process_count=1)
    steps = common.num_steps(args, pipe.steps_per_epoch, smoke_steps=6)
    every = max(1, round(args.eval_every * pipe.steps_per_epoch)) if not args.smoke else max(1, steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(1, int(args.warmup * steps)), max(steps, 2),
                                                  end_value=args.lr * 1e-3)
    decay_mask = lambda params: jax.tree.map(lambda a: a.ndim > 1, params)   # kernels decay, biases / norms do not
    tx = optax.adamw(schedule, weight_decay=args.weight_decay, mask=decay_mask)

    spec = jax.ShapeDtypeStruct((args.batch_size,) + info.shape, jnp.uint8)
    state = init_state(model, spec, tx, args.seed)
    shardings = parallel.step_shardings(state, mesh)
    state = parallel.place_state(state, shardings["state_sharding"])
    options = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    step = train_step(classifier_loss(model, x="image", y="label", label_smoothing=args.label_smoothing), tx,
                      compute_dtype=None if cdt == jnp.float32 else cdt, grad_norm=False, compiler_options=options,
                      **shardings)

    def eval_logits(state, images):  # eval mode, in the compute dtype; float32 logits (log-probabilities with TTA)
        params = state.params if cdt == jnp.float32 else cast(state.params, cdt)
        logits = lambda x: model.apply(params, state.model_state, x, train=False)[0].astype(jnp.float32)
        return logits(images) if args.tta == "none" else flip_averaged(logits)(images)

    def eval_metrics(state, batch):
        logits = eval_logits(state, batch["image"])
        w = batch["weight"]
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return {"loss": jnp.sum(w * xent), "accuracy": jnp.sum(w * (jnp.argmax(logits, -1) == batch["label"]))}

    eval_fn = compile_fn(eval_metrics, in_shardings=(shardings["state_sharding"], shardings["batch_sharding"]),
                         out_shardings=parallel.replicated(mesh), compiler_options=options)
    eval_bs = -(-EVAL_BATCH // args.devices) * args.devices
    val_pipe, test_pipe = _eval_pipeline(val, eval_bs), _eval_pipeline(test, eval_bs)
    clock = {"at": 0.0}

    def val_batches():
        clock["at"] = offset + time.perf_counter() - t_start
        return val_pipe.batches(0)

    def timed_eval(state, batch):  # a constant per evaluation: its mean over batches is the evaluation's time
        return dict(eval_fn(state, batch), wall_s=np.float64(clock["at"]))

    put = functools.partial(parallel.shard_batch, mesh=mesh)
    n_params = tree.param_count(state.params)
    print(f"{args.experiment}: {n_params:,} parameters, {len(train['label'])} train / {len(val['label'])} validation "
          f"/ {len(test['label'])} test examples of {args.dataset}, {steps} steps of {args.batch_size} on "
          f"{len(devs)} {devs[0].platform} device(s), {args.precision}", flush=True)
    result = fit(step, state, pipe.batches, steps=steps, eval_step=timed_eval, eval_batches=val_batches,
                 eval_every=every, out_dir=args.out, checkpoint_every=every, resume=args.resume, put_batch=put,
                 log_every=max(1, min(100, every)))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    test_metrics = evaluate(eval_fn, result.state, test_pipe.batches(0), put, prefix="test_")
    wall = offset + time.perf_counter() - t_start

    records = common.read_metrics(args.out)
    vals = [r for r in records if r.get("split") == "val"]
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = {"test_accuracy": test_metrics["test_accuracy"], "test_loss_nats": test_metrics["test_loss"],
               "val_accuracy": vals[-1]["val_accuracy"] if vals else None,
               "val_loss_nats": vals[-1]["val_loss"] if vals else None}
    for minutes in (5, 10, 15):
        metrics[f"val_accuracy_at_{minutes}min"] = accuracy_at(records, 60 * minutes)
    common.plot_curves(args.out)
    extra = {"parameters": n_params, "stop_reason": result.stop_reason}
    report = calibration(eval_logits, result.state, test, args.out, info.class_names)
    metrics.update({"test_ece": report["ece"], "test_mce": report["mce"], "test_nll_nats": report["nll_nats"],
                    "test_worst_class_accuracy": min(report["per_class_accuracy"])})
    if saliency:
        k = 8
        x = jnp.asarray(test["image"][:k])
        y = jnp.asarray(test["label"][:k])
        prep = Preprocess(mean, std, None, jnp.float32)
        xn = prep.apply({}, {}, x)[0]
        net_params, net_state = result.state.params["net"], result.state.model_state.get("net", {})
        maps = input_saliency(net.apply, net_params, net_state, xn, y)
        preds = jnp.argmax(net.apply(net_params, net_state, xn)[0], -1)
        plot_saliency(os.path.join(args.out, "saliency.png"), np.asarray(x), np.asarray(maps), np.asarray(y),
                      np.asarray(preds), info.class_names)
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=wall, steps=result.step,
                               train_examples_per_s=rates[-1] if rates else None, extra=extra)
    print(json.dumps({"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                      "wall_s": res["wall_s"], "steps": result.step, "out": args.out}))
    return res
