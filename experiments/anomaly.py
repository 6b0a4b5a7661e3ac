"""One-class anomaly detection on Fashion-MNIST: a convolutional autoencoder and a transformation classifier.

    python experiments/anomaly.py                         # all ten classes, both scorers (the BUILD_NOTES.md figure)
    python experiments/anomaly.py --classes 0,3 --smoke --out /tmp/an

Protocol (Golan & El-Yaniv, NeurIPS 2018, Table 1): per normal class, train on its 6,000 training images only, score
all 10,000 test images, report the AUROC (deepcore.metrics.roc_auc) with the other nine classes as the anomalies;
then the mean over the classes. Scorers (``--scorers``):

* ``cae``: a convolutional autoencoder (deepcore.models.autoencoder), MSE-trained; score = reconstruction error.
* ``geo``: a small VGG trained to tell which of K geometric transformations (deepcore.data.geometric: by default the
  36 of 3x3 translations by 0/+-7 pixels x 4 quarter turns; ``--flip on`` doubles them) was applied to a normal image,
  a random one per image and step; score = minus the summed log-probability of the right transformation over all K
  transforms of the test image. No flip by default: most garments are left-right symmetric, so the flip cannot be
  learned and only adds noise to the score (T-shirt AUROC 0.860 with it at K=8, 0.917 at K=36).

``--epochs`` counts geo's passes over the normal images, ``--ae-epochs`` the autoencoder's; ``--steps`` replaces both.
Writes results.json (per-class AUROC, the means), table.md (ours beside the published), metrics.jsonl, auroc.png,
anomalies.png (per class the 8 most normal, then 8 most anomalous test images by the last scorer) and per class and
scorer ``class_C/SCORER/`` (training metrics.jsonl, checkpoints; ``--resume`` skips finished classes, goes on).
"""
import argparse
import json
import os
import time

import anomaly_report
import common
import flagcheck

SCORERS = ("cae", "geo")
SMOKE = {"train": 256, "test": 400}   # images of the normal class / of the test split in a --smoke run


def add_flags(p):
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9", help="normal classes, comma-separated")
    p.add_argument("--scorers", default="cae,geo", help="comma-separated, of: " + ", ".join(SCORERS))
    p.add_argument("--ae-epochs", type=float, default=10.0, help="autoencoder passes over the normal images")
    p.add_argument("--latent", type=int, default=32, help="autoencoder code size")
    p.add_argument("--shift", type=int, default=7,
                   help="geo: translations by 0 and +-shift pixels along each axis (0: none)")
    p.add_argument("--flip", choices=("on", "off"), default="off",
                   help="geo: the left-right flip among the transforms (K = 4 quarter turns x 9 shifts x 2 flips)")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64], help="geo: VGG stage widths")
    p.add_argument("--ynn-fusion", choices=("on", "off"), default="on",
                   help="on a CPU, compile with XLA's YNNPACK fusion (faster convolutions)")
    flagcheck.rule(p, "--classes", "comma-separated distinct ints in [0, 9]", lambda v, a: _ints(v) is not None)
    flagcheck.rule(p, "--scorers", "comma-separated names of " + ", ".join(SCORERS),
                   lambda v, a: bool(v) and all(s in SCORERS for s in v.split(",")))
    flagcheck.rule(p, "--devices", "1 (this recipe runs on one device)", lambda v, a: v == 1)
    flagcheck.rule(p, "--shift", "a value in [0, 13]", lambda v, a: 0 <= v <= 13)
    flagcheck.above(p, 0, "--ae-epochs")
    flagcheck.at_least(p, 1, "--latent", "--widths")
    flagcheck.rule(p, "--batch-size", f"at most {SMOKE['train']} with --smoke (its training slice)",
                   lambda v, a: not a.smoke or v <= SMOKE["train"])
    flagcheck.image_dataset(p)
    return p


def _ints(text):
    try:
        v = [int(s) for s in text.split(",")]
    except ValueError:
        return None
    return v if len(set(v)) == len(v) and all(0 <= c <= 9 for c in v) else None


def data(args):
    """The training split and the test arrays (its first SMOKE["test"] with --smoke) of 28x28x1 images."""
    from deepcore.data import load
    train, test = load(args.dataset, ("train", "test"), data_dir=args.data_dir)
    if train.info.shape != (28, 28, 1):
        raise common.UsageError(f"--dataset {args.dataset}: expected 28x28x1 images, got {train.info.shape}")
    return train, {k: v[:SMOKE["test"]] if args.smoke else v for k, v in test.arrays.items()}


def transforms(args):
    """geo's gather indices (K, 784) and K, and the compiler options (YNNPACK fusion on a CPU, or None)."""
    import jax
    from deepcore.data.geometric import gather_indices, geometric_transforms
    from deepcore.train.compile_options import YNN_FUSION
    ts = geometric_transforms(flip=args.flip == "on", shifts=(0, -args.shift, args.shift) if args.shift else (0,))
    fast = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    return gather_indices(ts, 28, 28), len(ts), fast


def _unit(x):  # uint8 -> float32 in [0, 1]
    import jax.numpy as jnp
    return jnp.asarray(x, jnp.float32) / 255.0


def cae_model(args, normal_train, k, idx):
    """The autoencoder, its MSE loss, training arrays, epochs, score (B, 28, 28, 1) -> (B,) and predict chunk."""
    import numpy as np
    from deepcore.anomaly import reconstruction_error
    from deepcore.models.autoencoder import ConvAutoencoder
    from deepcore.train import reconstruction_loss
    ae = ConvAutoencoder((28, 28, 1), latent=args.latent)
    loss_fn = reconstruction_loss(ae, x="image")
    err = lambda s, x: reconstruction_error(_unit(x), ae.apply(s.params, s.model_state, _unit(x))[0])  # noqa
    return ae, loss_fn, {"image": np.asarray(_unit(normal_train["image"]))}, args.ae_epochs, err, 500


def geo_model(args, normal_train, k, idx):
    """The K-way VGG, its loss, training arrays, epochs, score (B, 28, 28, 1) -> (B,) and predict chunk."""
    import jax
    from deepcore.anomaly import transformation_score
    from deepcore.data.geometric import all_transforms, transform_images
    from deepcore.layers import Lambda, serial
    from deepcore.models.cnn import VGG
    from deepcore.train import classifier_loss
    net = serial(Lambda(_unit, "unit"), VGG(k, [[w] * (1 + (i > 0)) for i, w in enumerate(args.widths)]))
    base = classifier_loss(net, x="image", y="t")

    def loss_fn(params, model_state, batch, key, is_train):  # a random transform per image and step
        k_t, k_net = jax.random.split(key)
        t = jax.random.randint(k_t, (batch["image"].shape[0],), 0, k)
        return base(params, model_state, {"image": transform_images(batch["image"], t, idx), "t": t}, k_net, is_train)

    def score(s, x):  # (B, 28, 28, 1) -> every transform -> (B, K, K) log-probabilities -> (B,)
        xs = all_transforms(x, idx).reshape((-1, 28, 28, 1))
        logits = net.apply(s.params, s.model_state, xs)[0]
        return transformation_score(jax.nn.log_softmax(logits.reshape(x.shape[0], k, k), -1))

    return net, loss_fn, {"image": normal_train["image"]}, args.epochs, score, 100


MODELS = {"cae": cae_model, "geo": geo_model}


def optimiser(args, model, arrays, epochs):
    """The batches, the steps (``epochs`` passes or ``--steps``), Adam and the initial state."""
    import jax
    import optax
    from deepcore.data import make_batches
    from deepcore.train import init_state
    pipe = make_batches(arrays, min(args.batch_size, len(arrays["image"])), seed=args.seed)
    epochs_args = args if args.steps else argparse.Namespace(**dict(vars(args), epochs=epochs))
    steps = common.num_steps(epochs_args, pipe.steps_per_epoch, 4)
    tx = optax.adam(args.lr)
    spec = jax.ShapeDtypeStruct((pipe.batch_size, 28, 28, 1), arrays["image"].dtype)
    return pipe, steps, tx, init_state(model, spec, tx, args.seed)


def report_class(rec, scorers, t0, path):
    """Prints the class's line and writes its auroc.json."""
    rec["class_s"] = time.perf_counter() - t0
    aurocs = ", ".join(f"{s} AUROC {rec[f'{s}_auroc']:.4f}" for s in scorers)
    print(f"class {rec['class']} ({rec['name']}): {aurocs} ({rec['class_s']:.0f} s)", flush=True)
    with open(path, "w") as f:
        json.dump(rec, f)


def main(args):
    import numpy as np

    from deepcore.data.oneclass import one_class_split
    from deepcore.metrics import roc_auc
    from deepcore.train import fit, predict, train_step
    t_start = time.perf_counter()
    common.devices(args.devices)
    train, test_arrays = data(args)
    idx, k, fast = transforms(args)
    per_class, total_steps, scorers = {}, 0, args.scorers.split(",")
    for c in _ints(args.classes):
        path = os.path.join(args.out, f"class_{c}", "auroc.json")
        if args.resume and os.path.exists(path):   # finished before the run was stopped
            with open(path) as f:
                per_class[c] = json.load(f)
            continue
        normal_train, normal_test = one_class_split(train.arrays, test_arrays, c)
        if args.smoke:
            normal_train = {key: v[:SMOKE["train"]] for key, v in normal_train.items()}
        rec, t0 = {"class": c, "name": train.info.class_names[c]}, time.perf_counter()
        for name in scorers:
            model, loss_fn, arrays, epochs, score, chunk = MODELS[name](args, normal_train, k, idx)
            pipe, steps, tx, state = optimiser(args, model, arrays, epochs)
            result = fit(train_step(loss_fn, tx, compiler_options=fast), state, pipe.batches, steps=steps,
                         out_dir=os.path.join(args.out, f"class_{c}", name), checkpoint_every=max(1, steps // 2),
                         resume=args.resume, log_every=max(1, min(100, steps)))
            if result.stop_reason == "nonfinite":
                raise common.UsageError(result.message)
            scores = predict(score, test_arrays["image"], chunk, args=(result.state,), compiler_options=fast)
            rec[f"{name}_auroc"] = float(roc_auc(scores, ~normal_test["normal"]))
            order = np.argsort(scores)
            rec.update(most_normal=order[:8].tolist(), most_anomalous=order[::-1][:8].tolist())
            total_steps += result.step
        report_class(rec, scorers, t0, path)
        per_class[c] = rec

    metrics = anomaly_report.write(args.out, per_class, scorers, test_arrays["image"], k)
    return common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                                steps=total_steps, train_examples_per_s=None,
                                extra={"transforms": k, "per_class": list(per_class.values()),
                                       "published": anomaly_report.PUBLISHED_SOURCE})


if __name__ == "__main__":
    common.run(main, add_flags(common.parser("anomaly", __doc__.splitlines()[0], epochs=20, batch_size=128,
                                             lr=1e-3)))
