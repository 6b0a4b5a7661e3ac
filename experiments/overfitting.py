"""Overfitting on 1,000 Fashion-MNIST images, and what each regulariser does about it.

One small CNN is trained on a 1,000-example slice of the training split in six configurations: baseline, +dropout,
+weight decay, +augmentation (crop and flip), +early stopping (on the validation loss), and all combined. Each
evaluation measures the training, validation and test slices (logged as ``val_loss``/``val_accuracy``,
``val_train_*``, ``val_test_*``); ``results.json`` records each generalisation gap (train minus test accuracy, on
the whole test split), ``curves.png`` draws train vs test accuracy of each. Then an ensemble of K baseline members
differing only in seed, trained in one compiled step: ensemble vs one member in results.json and reliability.png.
Each configuration has its own folder (``--out/<name>/``: metrics.jsonl, checkpoints, curves.png, done.json);
``--resume`` skips finished ones. ``python experiments/overfitting.py [--smoke --out /tmp/o]``.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import common
import flagcheck
from deepcore.core import cast
from deepcore.data import batched, compose, load, make_batches, random_crop, random_flip
from deepcore.interpret import ensemble_report, layer_stats, member_probs, reliability_diagram
from deepcore.interpret import train_test_curves, training_curves
from deepcore.layers import Conv, Dense, Dropout, Flatten, MaxPool, Relu, serial
from deepcore.train import EarlyStopping, classifier_loss, evaluate_split, fit, init_state, train_step
from deepcore.train.population import init_population, population_step

SMOKE_EXAMPLES = 200  # training (and evaluation) examples of a --smoke run
EVAL_BATCH = 1000
CONFIGS = {"baseline": "", "dropout": "D", "weight_decay": "W", "augmentation": "A", "early_stopping": "E",
           "all_combined": "DWAE"}   # name: its regularisers (Dropout, Weight decay, Augmentation, Early stopping)


def build_parser():
    p = common.parser("overfitting", __doc__.splitlines()[0], epochs=40, batch_size=50, lr=1e-3)
    p.add_argument("--train-examples", type=int, default=1000, help="size of the training slice")
    p.add_argument("--eval-examples", type=int, default=2000, help="validation and test examples of each evaluation")
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


def prepare(args):
    """Float images scaled to [0, 1] minus the slice mean: the training slice, and validation/test slices."""
    n_train, n_eval = _n_train(args), SMOKE_EXAMPLES if args.smoke else args.eval_examples
    train, val, test = load(args.dataset, ("train", "validation", "test"), data_dir=args.data_dir)
    if n_train > len(train.arrays["label"]):
        raise common.UsageError(f"--train-examples {n_train}: the train split has {len(train.arrays['label'])}")
    pick = np.random.default_rng(args.seed).permutation(len(train.arrays["label"]))[:n_train]
    mean = float(train.arrays["image"][pick].mean() / 255.0)
    arrays = lambda ds, idx: {"x": ds.arrays["image"][idx].astype(np.float32) / 255.0 - mean,
                              "y": ds.arrays["label"][idx].astype(np.int32)}
    test_all = arrays(test, slice(0, 500 if args.smoke else None))
    return {"train": arrays(train, pick), "val": arrays(val, slice(0, n_eval)),
            "test": {k: v[:n_eval] for k, v in test_all.items()}, "test_all": test_all}


def cnn(dropout: float):
    """Two 3x3 conv + max-pool stages and a 128-unit hidden layer (about 220k parameters)."""
    drop = lambda: [Dropout(dropout)] if dropout else []  # noqa: E731
    return serial(Conv(16, (3, 3)), Relu, MaxPool((2, 2)), *drop(), Conv(32, (3, 3)), Relu, MaxPool((2, 2)), *drop(),
                  Flatten(), Dense(128), Relu, *drop(), Dense(10))


def train_config(args, name, data, steps, steps_per_epoch):
    """One configuration: model, optimiser, loss (with augmentation), fit; then the slices' accuracies."""
    use_dropout, use_wd, use_aug, use_es = (r in CONFIGS[name] for r in "DWAE")
    out = os.path.join(args.out, name)
    if args.resume and os.path.exists(os.path.join(out, "done.json")):   # finished before the interruption
        with open(os.path.join(out, "done.json")) as f:
            return json.load(f)
    model = cnn(args.dropout if use_dropout else 0.0)
    tx = optax.adamw(args.lr, weight_decay=args.weight_decay) if use_wd else optax.adam(args.lr)
    loss, augment = classifier_loss(model), batched(compose(lambda k, im: random_crop(k, im, padding=2), random_flip))
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None

    def loss_fn(params, model_state, batch, key, train):  # augmentation: the training batch cropped and flipped
        if use_aug and train:
            key, k_aug = jax.random.split(key)
            batch = {**batch, "x": augment(k_aug, batch["x"])}
        return loss(params, model_state, batch, key, train)

    def per_example(state, batch):  # eval mode: (B,) cross-entropy and correctness
        params, x = (state.params, batch["x"]) if cdt is None else (cast(state.params, cdt), batch["x"].astype(cdt))
        logits = model.apply(params, state.model_state, x)[0].astype(jnp.float32)
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]),
                "accuracy": jnp.argmax(logits, -1) == batch["y"]}

    def evaluate(state, _):  # loss and accuracy of the validation slice, and as train_*, test_* of the others
        ev = {s: evaluate_split(per_example, data[s], EVAL_BATCH, args=(state,)) for s in ("val", "train", "test")}
        return {**ev["val"], **{f"{s}_{k}": v for s in ("train", "test") for k, v in ev[s].items()}}

    spec = jax.ShapeDtypeStruct((args.batch_size, 28, 28, 1), jnp.float32)
    state = jax.jit(lambda: init_state(model, spec, tx, seed=args.seed))()  # one compilation, not one per op
    pipe = make_batches(data["train"], args.batch_size, seed=args.seed)
    every = max(1, round(args.eval_every * steps_per_epoch))  # evaluations; checkpoints every 5th of them
    print(f"== {name}: {steps} steps, evaluating every {every}", flush=True)
    t0 = time.perf_counter()
    result = fit(train_step(loss_fn, tx, compute_dtype=cdt), state, pipe.batches, steps=steps, eval_step=evaluate,
                 eval_batches=lambda: [None], eval_every=every, out_dir=out, checkpoint_every=5 * every,
                 early_stopping=EarlyStopping("val_loss", patience=args.patience) if use_es else None,
                 resume=args.resume, log_every=every)
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    training_curves(out)
    curve = [{"step": r["step"], "train_accuracy": r["val_train_accuracy"], "test_accuracy": r["val_test_accuracy"],
              "val_accuracy": r["val_accuracy"]} for r in result.history if r.get("split") == "val"]
    train_acc, test_acc = (evaluate_split(per_example, data[s], EVAL_BATCH, args=(result.state,))["accuracy"]
                           for s in ("train", "test_all"))
    inside = {k: v[:500] for k, v in data["train"].items()}   # per-layer statistics on 500 training images
    stats = jax.jit(lambda p, s: layer_stats(model, p, s, inside["x"], grads=jax.grad(
        lambda p: loss_fn(p, s, inside, None, False)[0])(p)))(result.state.params, result.state.model_state)
    summary = {"train_accuracy": train_acc, "test_accuracy": test_acc, "gap": train_acc - test_acc,
               "steps": result.step, "stop_reason": result.stop_reason, "wall_s": round(time.perf_counter() - t0, 2),
               "layers": {k: round(float(v), 6) for k, v in stats.items()}, "curve": curve}
    with open(os.path.join(out, "done.json"), "w") as f:
        json.dump(summary, f)
    return summary


def train_ensemble(args, data, steps):
    """``--members`` baseline CNNs differing in seed (sharing the batch order), one compiled step for all."""
    model, tx = cnn(0.0), optax.adam(args.lr)
    spec = jax.ShapeDtypeStruct((args.batch_size, 28, 28, 1), jnp.float32)
    seeds = range(args.seed, args.seed + args.members)
    states = jax.jit(lambda: init_population(lambda k: model.init(k, spec)[1:], tx, seeds=seeds))()
    pipe, t0 = make_batches(data["train"], args.batch_size, seed=args.seed), time.perf_counter()
    print(f"== ensemble of {args.members}: {steps} steps", flush=True)
    cdt = jnp.bfloat16 if args.precision == "bfloat16" else None
    result = fit(population_step(classifier_loss(model), tx, compute_dtype=cdt), states, pipe.batches, steps=steps,
                 out_dir=os.path.join(args.out, "ensemble"), checkpoint_every=max(1, steps // 4),
                 resume=args.resume, log_every=max(1, steps // 10))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    test = data["test_all"]
    probs = np.concatenate([np.asarray(member_probs(model, result.state, test["x"][i:i + EVAL_BATCH]), np.float32)
                            for i in range(0, len(test["y"]), EVAL_BATCH)], axis=1)   # (members, N, classes)
    report = ensemble_report(probs, test["y"], num_classes=10)
    reliability_diagram(os.path.join(args.out, "reliability.png"), None, test["y"],
                        others={"single member": probs[0], f"ensemble of {args.members}": probs.mean(0)},
                        title="test split: ensemble vs one member")
    return dict(report, wall_s=round(time.perf_counter() - t0, 2))


def main(args):
    data = prepare(args)
    steps_per_epoch = len(data["train"]["y"]) // args.batch_size
    if args.smoke:
        args.eval_every, args.members = min(args.eval_every, 1), min(args.members, 2)
    steps = common.num_steps(args, steps_per_epoch, smoke_steps=2 * steps_per_epoch)
    t0 = time.perf_counter()
    results = {name: train_config(args, name, data, steps, steps_per_epoch) for name in _configs(args.configs)}
    train_test_curves(os.path.join(args.out, "curves.png"), {n: r["curve"] for n, r in results.items()},
                      gaps={n: r["gap"] for n, r in results.items()}, train_label="train (1,000-example slice)")
    metrics = {f"{n}_{k}": r[k] for n, r in results.items() for k in ("train_accuracy", "test_accuracy", "gap")}
    if "baseline" in results:
        metrics["test_accuracy"] = results["baseline"]["test_accuracy"]
    ensemble = train_ensemble(args, data, steps) if args.members else None
    if ensemble:
        metrics.update({f"{who}_test_{k}": ensemble[who][k] for who in ("ensemble", "member_mean")
                        for k in ("accuracy", "ece")})
    wall = time.perf_counter() - t0
    trained = sum(r["steps"] for r in results.values()) + steps * args.members
    configurations = {n: {k: v for k, v in r.items() if k != "curve"} for n, r in results.items()}
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=wall, steps=steps,
                               train_examples_per_s=round(trained * args.batch_size / wall, 1),
                               extra={"configurations": configurations, "ensemble": ensemble,
                                      "train_examples": len(data["train"]["y"])})
    print("\n".join(f"{k:>32}: {v:.3f}" for k, v in metrics.items()))
    return res


if __name__ == "__main__":
    common.run(main, build_parser())
