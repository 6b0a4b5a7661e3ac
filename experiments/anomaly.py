"""One-class anomaly detection on Fashion-MNIST: a convolutional autoencoder and a transformation classifier.

    python experiments/anomaly.py                         # all ten classes, both scorers (the BUILD_NOTES.md figure)
    python experiments/anomaly.py --classes 0,3 --smoke --out /tmp/an

Protocol (Golan & El-Yaniv, NeurIPS 2018, Table 1): for each normal class, train on that class's 6,000 training
images only, score all 10,000 test images, and report the AUROC with the other nine classes as the anomalies
(deepcore.metrics.roc_auc); then the mean over the classes. Scorers (``--scorers``):

* ``cae``: a convolutional autoencoder (deepcore.models.autoencoder), MSE-trained; score = reconstruction error.
* ``geo``: a small VGG trained to tell which of K geometric transformations (deepcore.data.geometric: by default
  the 36 of 3x3 translations by 0/+-7 pixels x 4 quarter turns; ``--flip on`` doubles them) was applied to a normal
  image, a random one per image and step; score = minus the summed log-probability of the right transformation
  over all K transforms of the test image. No flip by default: most garments are left-right symmetric, so the
  flip cannot be learned and only adds noise to the score (T-shirt AUROC 0.860 with it at K=8, 0.917 at K=36).

``--epochs`` counts geo's passes over the normal class's images, ``--ae-epochs`` the autoencoder's; ``--steps``
replaces both. Writes results.json (per-class AUROC and the means), table.md (ours beside the published columns),
metrics.jsonl (one record per class), auroc.png, anomalies.png (per class the 8 most normal, then the 8 most
anomalous test images by the last scorer) and per class and scorer ``class_C/SCORER/`` with the training
metrics.jsonl and checkpoints: ``--resume`` skips finished classes and continues the unfinished one.
"""
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


def main(args):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from deepcore.anomaly import reconstruction_error, transformation_score
    from deepcore.data import load, make_batches
    from deepcore.data.geometric import all_transforms, gather_indices, geometric_transforms, transform_images
    from deepcore.data.oneclass import one_class_split
    from deepcore.layers import Lambda, serial
    from deepcore.metrics import roc_auc
    from deepcore.models.autoencoder import ConvAutoencoder
    from deepcore.models.cnn import VGG
    from deepcore.train import classifier_loss, fit, init_state, predict, reconstruction_loss, train_step
    from deepcore.train.compile_options import YNN_FUSION

    t_start = time.perf_counter()
    common.devices(args.devices)
    train, test = load(args.dataset, ("train", "test"), data_dir=args.data_dir)
    if train.info.shape != (28, 28, 1):
        raise common.UsageError(f"--dataset {args.dataset}: expected 28x28x1 images, got {train.info.shape}")
    test_arrays = {k: v[:SMOKE["test"]] if args.smoke else v for k, v in test.arrays.items()}
    names = train.info.class_names
    shifts = (0, -args.shift, args.shift) if args.shift else (0,)
    transforms = geometric_transforms(flip=args.flip == "on", shifts=shifts)
    idx, k = gather_indices(transforms, 28, 28), len(transforms)
    fast = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    unit = lambda x: jnp.asarray(x, jnp.float32) / 255.0   # noqa: E731  uint8 -> [0, 1]

    def train_model(model, loss_fn, arrays, epochs, sub):
        """Adam over ``arrays`` for ``epochs`` (or ``--steps`` updates), checkpointed in ``sub``: the state."""
        pipe = make_batches(arrays, min(args.batch_size, len(arrays["image"])), seed=args.seed)
        steps = common.num_steps(args if args.steps else _with(args, epochs=epochs), pipe.steps_per_epoch, 4)
        tx = optax.adam(args.lr)
        spec = jax.ShapeDtypeStruct((pipe.batch_size, 28, 28, 1), arrays["image"].dtype)
        state = init_state(model, spec, tx, args.seed)
        result = fit(train_step(loss_fn, tx, compiler_options=fast), state, pipe.batches, steps=steps, out_dir=sub,
                     checkpoint_every=max(1, steps // 2), resume=args.resume, log_every=max(1, min(100, steps)))
        if result.stop_reason == "nonfinite":
            raise common.UsageError(result.message)
        return result.state, result.step

    def score_cae(normal_train, sub):
        ae = ConvAutoencoder((28, 28, 1), latent=args.latent)
        state, steps = train_model(ae, reconstruction_loss(ae, x="image"), {"image": np.asarray(unit(
            normal_train["image"]))}, args.ae_epochs, sub)
        err = lambda s, x: reconstruction_error(unit(x), ae.apply(s.params, s.model_state, unit(x))[0])  # noqa
        return predict(err, test_arrays["image"], 500, args=(state,), compiler_options=fast), steps

    def score_geo(normal_train, sub):
        net = serial(Lambda(unit, "unit"), VGG(k, [[w] * (1 + (i > 0)) for i, w in enumerate(args.widths)]))
        base = classifier_loss(net, x="image", y="t")

        def loss_fn(params, model_state, batch, key, is_train):  # a random transform per image and step
            k_t, k_net = jax.random.split(key)
            t = jax.random.randint(k_t, (batch["image"].shape[0],), 0, k)
            return base(params, model_state, {"image": transform_images(batch["image"], t, idx), "t": t},
                        k_net, is_train)

        state, steps = train_model(net, loss_fn, {"image": normal_train["image"]}, args.epochs, sub)

        def score(s, x):  # (B, 28, 28, 1) -> every transform -> (B, K, K) log-probabilities -> (B,)
            xs = all_transforms(x, idx).reshape((-1, 28, 28, 1))
            logits = net.apply(s.params, s.model_state, xs)[0]
            return transformation_score(jax.nn.log_softmax(logits.reshape(x.shape[0], k, k), -1))

        return predict(score, test_arrays["image"], 100, args=(state,), compiler_options=fast), steps

    scorers = {"cae": score_cae, "geo": score_geo}
    per_class, total_steps = {}, 0
    for c in _ints(args.classes):
        path = os.path.join(args.out, f"class_{c}", "auroc.json")
        if args.resume and os.path.exists(path):   # finished before the run was stopped
            with open(path) as f:
                per_class[c] = json.load(f)
            continue
        normal_train, normal_test = one_class_split(train.arrays, test_arrays, c)
        if args.smoke:
            normal_train = {key: v[:SMOKE["train"]] for key, v in normal_train.items()}
        rec, t0 = {"class": c, "name": names[c]}, time.perf_counter()
        for name in args.scorers.split(","):
            scores, steps = scorers[name](normal_train, os.path.join(args.out, f"class_{c}", name))
            rec[f"{name}_auroc"] = float(roc_auc(scores, ~normal_test["normal"]))
            order = np.argsort(scores)
            rec.update(most_normal=order[:8].tolist(), most_anomalous=order[::-1][:8].tolist())
            total_steps += steps
        rec["class_s"] = time.perf_counter() - t0
        print(f"class {c} ({names[c]}): " + ", ".join(f"{s} AUROC {rec[f'{s}_auroc']:.4f}"
                                                      for s in args.scorers.split(",")) +
              f" ({rec['class_s']:.0f} s)", flush=True)
        with open(path, "w") as f:
            json.dump(rec, f)
        per_class[c] = rec

    metrics = anomaly_report.write(args.out, per_class, args.scorers.split(","), test_arrays["image"], k)
    return common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                                steps=total_steps, train_examples_per_s=None,
                                extra={"transforms": k, "per_class": list(per_class.values()),
                                       "published": anomaly_report.PUBLISHED_SOURCE})


def _with(args, **changes):
    import argparse
    return argparse.Namespace(**dict(vars(args), **changes))


if __name__ == "__main__":
    common.run(main, add_flags(common.parser("anomaly", __doc__.splitlines()[0], epochs=20, batch_size=128,
                                             lr=1e-3)))
