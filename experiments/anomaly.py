"""One-class anomaly detection on Fashion-MNIST: a convolutional autoencoder and a transformation classifier.

    python experiments/anomaly.py                         # all ten classes, both scorers (the BUILD_NOTES.md figure)
    python experiments/anomaly.py --classes 0,3 --smoke --out /tmp/an

Protocol (Golan & El-Yaniv, NeurIPS 2018, Table 1): per normal class, train on its 6,000 training images only, score
all 10,000 test images, report the AUROC (deepcore.metrics.roc_auc) with the other nine classes as the anomalies;
then the mean over the classes. Scorers (``--scorers``):

* ``cae``: a convolutional autoencoder (deepcore.models.autoencoder), MSE-trained; score = reconstruction error.
* ``geo``: a small VGG trained to tell which of K geometric transformations (deepcore.data.geometric: by default the
  36 of 3x3 translations by 0/+-7 pixels x 4 quarter turns; ``--flip on`` doubles them) was applied to a normal image,
  a random one per image and step. Two scores from its softmax over all K transforms of a test image: ``geo`` (the
  default), the paper's Dirichlet score (deepcore.anomaly.dirichlet_score, one Dirichlet per transform fitted to the
  normal training images' softmax vectors), and ``geo_simple``, minus the summed log-probability of the right
  transform. No flip by default: most garments are left-right symmetric, so the flip cannot be learned and only adds
  noise (T-shirt AUROC 0.860 with it at K=8, 0.917 at K=36).

``--epochs`` counts geo's passes over the normal images, ``--ae-epochs`` the autoencoder's; ``--steps`` replaces both.
Writes results.json (per-class AUROC, the means), table.md (ours beside the published), metrics.jsonl, auroc.png,
anomalies.png (per class the 8 most normal, then 8 most anomalous test images by the last scorer's default score),
``class_C/SCORER/`` (training metrics.jsonl, checkpoints; ``--resume`` skips finished classes, goes on).
"""
import argparse
import os
import time

import anomaly_report
import common
import flagcheck

SCORERS = ("cae", "geo")
SCORES = {"cae": ("cae",), "geo": ("geo", "geo_simple")}   # each scorer's reported scores, its default first
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


def setup(args):
    """The training split, the test arrays (their first SMOKE["test"] with --smoke) of 28x28x1 images, geo's gather
    indices (K, 784) and K, and the compiler options (YNNPACK fusion on a CPU, or None)."""
    import jax
    from deepcore.data import load
    from deepcore.data.geometric import gather_indices, geometric_transforms
    from deepcore.train.compile_options import YNN_FUSION
    train, test = load(args.dataset, ("train", "test"), data_dir=args.data_dir)
    if train.info.shape != (28, 28, 1):
        raise common.UsageError(f"--dataset {args.dataset}: expected 28x28x1 images, got {train.info.shape}")
    ts = geometric_transforms(flip=args.flip == "on", shifts=(0, -args.shift, args.shift) if args.shift else (0,))
    fast = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    test_arrays = {key: v[:SMOKE["test"]] if args.smoke else v for key, v in test.arrays.items()}
    return train, test_arrays, gather_indices(ts, 28, 28), len(ts), fast


def _unit(x):  # uint8 -> float32 in [0, 1]
    import jax.numpy as jnp
    return jnp.asarray(x, jnp.float32) / 255.0


def cae_model(args, normal_train, k, idx):
    """The autoencoder, its MSE loss, training arrays, epochs and ``scores(state, images, fast)`` (see geo_model)."""
    import numpy as np
    from deepcore.anomaly import reconstruction_error
    from deepcore.models.autoencoder import ConvAutoencoder
    from deepcore.train import predict, reconstruction_loss
    ae = ConvAutoencoder((28, 28, 1), latent=args.latent)
    err = lambda s, x: reconstruction_error(_unit(x), ae.apply(s.params, s.model_state, _unit(x))[0])  # noqa

    def scores(state, images, fast):
        return {"cae": predict(err, images, 500, args=(state,), compiler_options=fast)}, {}

    return ae, reconstruction_loss(ae, x="image"), {"image": np.asarray(_unit(normal_train["image"]))}, \
        args.ae_epochs, scores


def geo_model(args, normal_train, k, idx):
    """The K-way VGG, its loss, training arrays, epochs and ``scores(state, images (N, 28, 28, 1), fast) ->
    ({"geo": Dirichlet score, "geo_simple": simple score} each (N,), {"dirichlet_fit_s": seconds})``."""
    import jax
    from deepcore.anomaly import dirichlet_fit, dirichlet_score, transformation_score
    from deepcore.data.geometric import all_transforms, transform_images
    from deepcore.layers import Lambda, serial
    from deepcore.models.cnn import VGG
    from deepcore.train import classifier_loss, predict
    net = serial(Lambda(_unit, "unit"), VGG(k, [[w] * (1 + (i > 0)) for i, w in enumerate(args.widths)]))
    base = classifier_loss(net, x="image", y="t")

    def loss_fn(params, model_state, batch, key, is_train):  # a random transform per image and step
        k_t, k_net = jax.random.split(key)
        t = jax.random.randint(k_t, (batch["image"].shape[0],), 0, k)
        return base(params, model_state, {"image": transform_images(batch["image"], t, idx), "t": t}, k_net, is_train)

    def log_probs(s, x):  # (B, 28, 28, 1) -> every transform -> (B, K, K) log-probabilities
        logits = net.apply(s.params, s.model_state, all_transforms(x, idx).reshape((-1, 28, 28, 1)))[0]
        return jax.nn.log_softmax(logits.reshape(x.shape[0], k, k), -1)

    def scores(state, images, fast):  # alphas (K, K): row t fitted to the normal training images' rows t
        t0 = time.perf_counter()
        normal = predict(log_probs, normal_train["image"], 100, args=(state,), compiler_options=fast)
        alphas = jax.block_until_ready(jax.jit(jax.vmap(dirichlet_fit, in_axes=1))(normal))
        fit_s = time.perf_counter() - t0
        test = predict(log_probs, images, 100, args=(state,), compiler_options=fast)
        return ({"geo": dirichlet_score(test, alphas), "geo_simple": transformation_score(test)},
                {"dirichlet_fit_s": fit_s})

    return net, loss_fn, {"image": normal_train["image"]}, args.epochs, scores


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


def main(args):
    from deepcore.data.oneclass import one_class_split
    from deepcore.metrics import roc_auc
    from deepcore.train import fit, train_step
    t_start = time.perf_counter()
    common.devices(args.devices)
    train, test_arrays, idx, k, fast = setup(args)
    per_class, total_steps, scorers = {}, 0, args.scorers.split(",")
    names = [n for s in scorers for n in SCORES[s]]
    for c in _ints(args.classes):
        path = os.path.join(args.out, f"class_{c}", "auroc.json")
        if args.resume and (done := anomaly_report.read_class(path, names)):   # finished before a stop
            per_class[c] = done
            continue
        normal_train, normal_test = one_class_split(train.arrays, test_arrays, c)
        if args.smoke:
            normal_train = {key: v[:SMOKE["train"]] for key, v in normal_train.items()}
        rec, t0 = {"class": c, "name": train.info.class_names[c]}, time.perf_counter()
        for name in scorers:
            model, loss_fn, arrays, epochs, scores_fn = MODELS[name](args, normal_train, k, idx)
            pipe, steps, tx, state = optimiser(args, model, arrays, epochs)
            result = fit(train_step(loss_fn, tx, compiler_options=fast), state, pipe.batches, steps=steps,
                         out_dir=os.path.join(args.out, f"class_{c}", name), checkpoint_every=max(1, steps // 2),
                         resume=args.resume, log_every=max(1, min(100, steps)))
            if result.stop_reason == "nonfinite":
                raise common.UsageError(result.message)
            scores, extra = scores_fn(result.state, test_arrays["image"], fast)
            rec.update(extra, **{f"{n}_auroc": float(roc_auc(v, ~normal_test["normal"])) for n, v in scores.items()})
            total_steps += result.step
        anomaly_report.write_class(rec, names, t0, path, scores[SCORES[name][0]])   # the last scorer's default
        per_class[c] = rec

    metrics = anomaly_report.write(args.out, per_class, names, test_arrays["image"], k)
    return common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                                steps=total_steps, train_examples_per_s=None,
                                extra={"transforms": k, "per_class": list(per_class.values()),
                                       "published": anomaly_report.PUBLISHED_SOURCE})


if __name__ == "__main__":
    common.run(main, add_flags(common.parser("anomaly", __doc__.splitlines()[0], epochs=20, batch_size=128,
                                             lr=1e-3)))
