"""Overfitting on 1,000 Fashion-MNIST images, and what each regulariser does about it.

The same small CNN is trained on a 1,000-example slice of the training split in six configurations:
baseline, +dropout, +weight decay, +augmentation (random crop and flip), +early stopping (on the
validation loss), and all of them combined. Every evaluation measures accuracy on the training slice,
a validation slice and a test slice; ``overfitting.png`` shows train vs test accuracy for each
configuration and ``results.json`` records the final generalisation gap (train minus test accuracy,
the test accuracy on the whole test split).

Then an ensemble: K baseline members differing only in seed, trained in one compiled step
(``deepcore.train.population``); its accuracy and expected calibration error against a single member
go to ``results.json`` and ``reliability.png``.

    python experiments/overfitting.py                      # the run BUILD_NOTES.md reports
    python experiments/overfitting.py --smoke --out /tmp/o # a tiny run

Each configuration has its own folder (``--out/<name>/``: metrics.jsonl, checkpoints, done.json);
``--resume`` skips finished ones and continues the interrupted one. ``fit`` prefixes every evaluation
metric with ``val_``: ``val_loss``/``val_accuracy`` are the validation slice's, ``val_train_accuracy``
and ``val_test_accuracy`` the training and test slices'.
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import common
import flagcheck
from deepcore.data import batched, compose, load, make_batches, random_crop, random_flip
from deepcore.interpret import ensemble_report, layer_stats, member_probs, reliability_diagram
from deepcore.layers import Conv, Dense, Dropout, Flatten, MaxPool, Relu, serial
from deepcore.train import EarlyStopping, classifier_loss, eval_step, fit, init_state, train_step
from deepcore.train.population import init_population, population_step

SMOKE_EXAMPLES = 200  # training (and evaluation) examples of a --smoke run
CONFIGS = {  # name: (dropout, weight decay, augmentation, early stopping)
    "baseline": (False, False, False, False),
    "dropout": (True, False, False, False),
    "weight_decay": (False, True, False, False),
    "augmentation": (False, False, True, False),
    "early_stopping": (False, False, False, True),
    "all_combined": (True, True, True, True),
}


def build_parser():
    p = common.parser("overfitting", __doc__.splitlines()[0], epochs=40, batch_size=50, lr=1e-3)
    p.add_argument("--train-examples", type=int, default=1000, help="size of the training slice")
    p.add_argument("--eval-examples", type=int, default=2000,
                   help="validation and test examples measured at each evaluation (the final test uses all)")
    p.add_argument("--eval-every", type=int, default=2, help="evaluate every this many epochs")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout rate (after each pool and the hidden layer)")
    p.add_argument("--weight-decay", type=float, default=0.5, help="AdamW decoupled weight decay")
    p.add_argument("--patience", type=int, default=4, help="early stopping: evaluations without improvement")
    p.add_argument("--members", type=int, default=5, help="ensemble members (0: no ensemble)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    flagcheck.rule(p, "--configs", "a comma-separated subset of " + ",".join(CONFIGS),
                   lambda v, a: bool(_configs(v)) and all(c in CONFIGS for c in _configs(v)))
    flagcheck.rule(p, "--devices", "1 (this experiment trains small models on one device)", lambda v, a: v == 1)
    flagcheck.at_least(p, 0, "--members", "--weight-decay")
    flagcheck.at_least(p, 1, "--train-examples", "--eval-examples", "--patience")
    flagcheck.above(p, 0, "--eval-every")
    flagcheck.rate(p, "--dropout")
    flagcheck.rule(p, "--batch-size", lambda a: f"at most the {_n_train(a)} training examples"
                   + (" of --smoke" if a.smoke else " of --train-examples"), lambda v, a: v <= _n_train(a))
    flagcheck.image_dataset(p)
    return p


def _configs(text: str) -> list:
    return [c for c in text.split(",") if c]


def _n_train(args) -> int:
    return SMOKE_EXAMPLES if args.smoke else args.train_examples


def cnn(dropout: float):
    """Two 3x3 conv + max-pool stages and a 128-unit hidden layer (about 220k parameters)."""
    drop = (lambda: [Dropout(dropout)]) if dropout else (lambda: [])
    return serial(Conv(16, (3, 3)), Relu, MaxPool((2, 2)), *drop(),
                  Conv(32, (3, 3)), Relu, MaxPool((2, 2)), *drop(),
                  Flatten(), Dense(128), Relu, *drop(), Dense(10))


def prepare(args):
    """Float images scaled to [0, 1] minus the slice mean: the training slice, and validation/test slices."""
    n_train = _n_train(args)
    n_eval = SMOKE_EXAMPLES if args.smoke else args.eval_examples
    train, val, test = load(args.dataset, ("train", "validation", "test"), data_dir=args.data_dir)
    if n_train > len(train.arrays["label"]):
        raise common.UsageError(f"--train-examples {n_train}: the train split has {len(train.arrays['label'])}")
    pick = np.random.default_rng(args.seed).permutation(len(train.arrays["label"]))[:n_train]
    mean = float(train.arrays["image"][pick].mean() / 255.0)

    def arrays(ds, idx=None):
        img, lab = ds.arrays["image"], ds.arrays["label"]
        idx = np.arange(len(lab)) if idx is None else idx
        return {"x": img[idx].astype(np.float32) / 255.0 - mean, "y": lab[idx].astype(np.int32)}

    test_all = arrays(test, np.arange(min(len(test.arrays["label"]), 500)) if args.smoke else None)
    data = {"train": arrays(train, pick), "val": arrays(val, np.arange(min(n_eval, len(val.arrays["label"])))),
            "test": {k: v[:n_eval] for k, v in test_all.items()}, "test_all": test_all}
    return data, train.info


def make_loss(model, augment: bool):
    """Cross-entropy; with ``augment`` the training batch is randomly cropped (2-pixel pad) and flipped."""
    loss = classifier_loss(model)
    aug = batched(compose(lambda k, im: random_crop(k, im, padding=2), random_flip))

    def loss_fn(params, model_state, batch, key, train):
        if augment and train:
            key, k_aug = jax.random.split(key)
            batch = {**batch, "x": aug(k_aug, batch["x"])}
        return loss(params, model_state, batch, key, train)

    return loss_fn


def split_metrics(loss_fn):
    """Eval on one batch holding three splits: validation metrics plus train and test accuracy and loss."""
    def evaluate(params, model_state, batch, key, train):
        out = {}
        for split in ("train", "val", "test"):
            loss, (_, m) = loss_fn(params, model_state, {"x": batch[f"{split}_x"], "y": batch[f"{split}_y"]}, key, False)
            out.update({"loss": loss, **m} if split == "val" else {f"{split}_loss": loss, f"{split}_accuracy": m["accuracy"]})
        return out["loss"], (model_state, out)

    return evaluate


def accuracy_on(model, state, arrays, batch=1000):
    apply = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
    logits = np.concatenate([np.asarray(apply(state.params, state.model_state, arrays["x"][i:i + batch]))
                             for i in range(0, len(arrays["y"]), batch)])
    return float(np.mean(logits.argmax(-1) == arrays["y"]))


def inside(model, loss_fn, state, arrays, n=500):
    """Per-layer statistics of the trained model on ``n`` training images (eval mode): activation norms,
    dead-ReLU fractions and the loss gradient's norm per layer."""
    batch = {k: v[:n] for k, v in arrays.items()}

    @jax.jit
    def stats(params, model_state):
        grads = jax.grad(lambda p: loss_fn(p, model_state, batch, None, False)[0])(params)
        return layer_stats(model, params, model_state, batch["x"], grads=grads)

    return {k: round(float(v), 6) for k, v in stats(state.params, state.model_state).items()}


def train_config(args, name, data, steps, steps_per_epoch):
    use_dropout, use_wd, use_aug, use_es = CONFIGS[name]
    out = os.path.join(args.out, name)
    done = os.path.join(out, "done.json")
    if args.resume and os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    model = cnn(args.dropout if use_dropout else 0.0)
    tx = optax.adamw(args.lr, weight_decay=args.weight_decay) if use_wd else optax.adam(args.lr)
    loss_fn = make_loss(model, use_aug)
    spec = jax.ShapeDtypeStruct((args.batch_size, 28, 28, 1), jnp.float32)
    state = jax.jit(lambda: init_state(model, spec, tx, seed=args.seed))()  # one compilation, not one per op
    pipe = make_batches(data["train"], args.batch_size, seed=args.seed)
    eval_batch = {f"{s}_{k}": v for s in ("train", "val", "test") for k, v in data[s].items()}
    every = max(1, round(args.eval_every * steps_per_epoch))  # evaluations; checkpoints every 5th of them
    print(f"== {name}: {steps} steps, evaluating every {every}", flush=True)
    t0 = time.perf_counter()
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    result = fit(train_step(loss_fn, tx, compute_dtype=cdt), state, pipe.batches, steps=steps,
                 eval_step=eval_step(split_metrics(loss_fn), compute_dtype=cdt), eval_batches=lambda: [eval_batch], eval_every=every,
                 early_stopping=EarlyStopping("val_loss", patience=args.patience) if use_es else None,
                 out_dir=out, checkpoint_every=5 * every, resume=args.resume, log_every=every)
    curve = [{"step": r["step"], "train_accuracy": r["val_train_accuracy"], "test_accuracy": r["val_test_accuracy"],
              "val_accuracy": r["val_accuracy"]} for r in result.history if r.get("split") == "val"]
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    train_acc = accuracy_on(model, result.state, data["train"])
    test_acc = accuracy_on(model, result.state, data["test_all"])
    summary = {"train_accuracy": train_acc, "test_accuracy": test_acc, "gap": train_acc - test_acc,
               "steps": result.step, "stop_reason": result.stop_reason, "wall_s": round(time.perf_counter() - t0, 2),
               "layers": inside(model, loss_fn, result.state, data["train"]), "curve": curve}
    with open(done, "w") as f:
        json.dump(summary, f)
    return summary


def train_ensemble(args, data, steps):
    """``--members`` baseline CNNs differing in seed, one compiled step for all; ensemble vs members."""
    model = cnn(0.0)
    tx = optax.adam(args.lr)
    spec = jax.ShapeDtypeStruct((args.batch_size, 28, 28, 1), jnp.float32)
    seeds = range(args.seed, args.seed + args.members)
    states = jax.jit(lambda: init_population(lambda k: model.init(k, spec)[1:], tx, seeds=seeds))()
    # members share the batch order and differ in initialisation (seed)
    pipe = make_batches(data["train"], args.batch_size, seed=args.seed)
    t0 = time.perf_counter()
    print(f"== ensemble of {args.members}: {steps} steps", flush=True)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    result = fit(population_step(classifier_loss(model), tx, compute_dtype=cdt), states, pipe.batches, steps=steps,
                 out_dir=os.path.join(args.out, "ensemble"), checkpoint_every=max(1, steps // 4),
                 resume=args.resume, log_every=max(1, steps // 10))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    test = data["test_all"]
    probs = np.concatenate([np.asarray(member_probs(model, result.state, test["x"][i:i + 1000]), np.float32)
                            for i in range(0, len(test["y"]), 1000)], axis=1)
    report = ensemble_report(probs, test["y"], num_classes=10)
    reliability_diagram(os.path.join(args.out, "reliability.png"), None, test["y"],
                        others={"single member": probs[0], f"ensemble of {args.members}": probs.mean(0)},
                        title="test split: ensemble vs one member")
    report["wall_s"] = round(time.perf_counter() - t0, 2)
    return report


def plot(out, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, (name, r) in zip(axes.flat, results.items()):
        steps = [c["step"] for c in r["curve"]]
        ax.plot(steps, [c["train_accuracy"] for c in r["curve"]], label="train (1,000-example slice)")
        ax.plot(steps, [c["test_accuracy"] for c in r["curve"]], label="test", linestyle="--")
        ax.set_title(f"{name.replace('_', ' ')}: gap {r['gap']:.3f}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle("train vs test accuracy (gap: final train - test accuracy)", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out, "overfitting.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args):
    names = _configs(args.configs)  # flag values are checked at parse time (build_parser's rules)
    data, info = prepare(args)
    steps_per_epoch = len(data["train"]["y"]) // args.batch_size
    if steps_per_epoch < 1:
        raise common.UsageError(f"--batch-size {args.batch_size} exceeds the {len(data['train']['y'])}-example slice")
    if args.smoke:
        args.eval_every, args.members = min(args.eval_every, 1), min(args.members, 2)
    steps = common.num_steps(args, steps_per_epoch, smoke_steps=2 * steps_per_epoch)
    t0 = time.perf_counter()
    results = {name: train_config(args, name, data, steps, steps_per_epoch) for name in names}
    plot(args.out, results)
    metrics = {}
    for name, r in results.items():
        metrics.update({f"{name}_train_accuracy": r["train_accuracy"], f"{name}_test_accuracy": r["test_accuracy"],
                        f"{name}_gap": r["gap"]})
    if "baseline" in results:
        metrics["test_accuracy"] = results["baseline"]["test_accuracy"]
    ensemble = None
    if args.members:
        ensemble = train_ensemble(args, data, steps)
        metrics.update({"ensemble_test_accuracy": ensemble["ensemble"]["accuracy"],
                        "ensemble_test_ece": ensemble["ensemble"]["ece"],
                        "member_mean_test_accuracy": ensemble["member_mean"]["accuracy"],
                        "member_mean_test_ece": ensemble["member_mean"]["ece"]})
    wall = time.perf_counter() - t0
    trained = sum(r["steps"] for r in results.values()) + (steps * args.members if args.members else 0)
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=wall, steps=steps,
                               train_examples_per_s=round(trained * args.batch_size / wall, 1),
                               extra={"configurations": {n: {k: v for k, v in r.items() if k != "curve"}
                                                         for n, r in results.items()},
                                      "ensemble": ensemble, "train_examples": len(data["train"]["y"])})
    print("\n".join([f"{n:>15}: train {r['train_accuracy']:.3f} test {r['test_accuracy']:.3f} gap {r['gap']:.3f}"
                     for n, r in results.items()]))
    if ensemble:
        e, m = ensemble["ensemble"], ensemble["member_mean"]
        print(f"{'ensemble':>15}: test {e['accuracy']:.3f} ECE {e['ece']:.3f} "
              f"(one member on average: {m['accuracy']:.3f}, ECE {m['ece']:.3f})")
    print(f"wrote {args.out}/results.json, overfitting.png" + (", reliability.png" if ensemble else ""))
    return res


if __name__ == "__main__":
    common.run(main, build_parser())
