"""DCGAN on Fashion-MNIST: samples.png and a Fréchet distance in a fixed classifier's feature space.

    python experiments/gan.py                      # 15 minutes of training (the BUILD_NOTES.md figure)
    python experiments/gan.py --conditional        # class-conditional G and projection D
    python experiments/gan.py --smoke --out /tmp/g

Recipe: G dense 7*7*128 - BN - ReLU - convT(64, k4, s2) - BN - ReLU - convT(1, k4, s2) - tanh (z = 64);
D conv(64, k4, s2) - LeakyReLU(0.2) - conv(128, k4, s2) - LeakyReLU(0.2) - dense 1; Adam(2e-4, b1 0.5) for
both, non-saturating loss, one D and one G update per step, an EMA of G for sampling.

Sample quality: the Fréchet distance between Gaussians fitted to the penultimate-layer features of a small
CNN classifier (trained once on the training split, 2 epochs, seed 0, cached as an orbax checkpoint next to
the data) for ``--fid-samples`` generated images and the same number of training images (deepcore.gan.fid).
Reported next to its floor (held-out test vs training images) and its value at initialisation. The conditional
model also reports how often the classifier assigns generated samples their class.
"""
import os
import time

import common
import flagcheck
import generators


def add_flags(p):
    p.add_argument("--minutes", type=float, default=None,
                   help="training-time budget, evaluations excluded (default: 15 without --steps or --epochs)")
    p.add_argument("--loss", choices=("nonsaturating", "hinge", "wasserstein"), default="nonsaturating")
    p.add_argument("--penalty", choices=("none", "r1", "wgan-gp"), default="none")
    p.add_argument("--penalty-weight", type=float, default=10.0, help="weight of --penalty in D's loss")
    p.add_argument("--spectral-norm", action="store_true", help="spectral normalisation in D")
    p.add_argument("--conditional", action="store_true", help="class-conditional G and projection D")
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--eval-every", type=int, default=1000, help="steps between evaluations (FID, samples.png)")
    p.add_argument("--fid-samples", type=int, default=5000, help="images per side of each Fréchet distance")
    p.add_argument("--upsample", choices=("phase", "transpose"), default="phase",
                   help="transposed convs as per-phase convolutions (fast on CPU) or lax.conv_transpose")
    p.add_argument("--ynn", action="store_true",
                   help="force XLA:CPU's YNN fusions on the step (default: chosen per program, compile_options)")
    generators.rules(p, "GAN")
    flagcheck.at_least(p, 0, "--penalty-weight")
    flagcheck.at_least(p, 1, "--z-dim", "--eval-every")
    flagcheck.at_least(p, 2, "--fid-samples")
    flagcheck.rate(p, "--ema-decay")
    return p


def feature_space(args, train, test, n_fid):
    """``(score, known, classifier path)``: the fixed feature space (a classifier trained
    once, cached) and the Fréchet floor, held-out test vs train."""
    from deepcore.gan import fid

    score, fid_floor, clf_path, trained_now = generators.reference_space(args, train, test, n_fid)
    clf_acc = score.class_match(fid.unit(test["image"]), test["label"])
    print(f"classifier {'trained and saved to' if trained_now else 'loaded from'} {clf_path}: "
          f"test accuracy {clf_acc:.4f}; Fréchet distance floor (test vs train, {n_fid} each) {fid_floor:.3f}",
          flush=True)
    return score, {"fid_floor_test_vs_train": fid_floor, "fid_samples": n_fid, "classifier_test_accuracy": clf_acc}, \
        clf_path


def evaluation(args, G, score, n_fid, num_classes, cond):
    """``(quality, evaluate)``: the Fréchet distance (and class match) of fixed latents' samples; the evaluation
    of G and its EMA, writing samples.png (the same z each time; conditionally, one class per column)."""
    import jax
    import jax.numpy as jnp

    from deepcore.gan import fid
    from deepcore.gan.grid import save_grid

    grid_z = jax.random.normal(jax.random.PRNGKey(1234), (100, args.z_dim))
    grid_y = jnp.tile(jnp.arange(10), 10) % num_classes
    fid_z = jax.random.normal(jax.random.PRNGKey(4321), (n_fid, args.z_dim))
    quality, generate = fid.sample_quality(G, score, fid_z, jnp.arange(n_fid) % num_classes, conditional=bool(cond))

    def evaluate(state, _batch=None):
        m = {**quality(state.g_params, state.g_state), **quality(state.g_ema, state.g_state, "ema_")}
        save_grid(generate(state.g_ema, state.g_state, grid_z, grid_y), os.path.join(args.out, "samples.png"), 10)
        return m

    return quality, evaluate


def main(args):
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore.data import make_batches
    from deepcore.gan import gan_train_step, init_gan_state, losses
    from deepcore.models.gan import dcgan_discriminator, dcgan_generator
    from deepcore.train import TimeBudget, fit, spent_before
    from deepcore.train.compile_options import YNN_FUSION

    common.devices(args.devices)
    t_start = time.perf_counter()
    # data, and the fixed feature space of the Fréchet distance
    info, train_arrays, test_arrays, n_fid = generators.data(args, "DCGAN")
    num_classes = info.num_classes
    score, known, clf_path = feature_space(args, train_arrays, test_arrays, n_fid)

    # model
    cond = num_classes if args.conditional else None
    G = dcgan_generator(args.z_dim, upsample=args.upsample, num_classes=cond)
    D = dcgan_discriminator(spectral_norm=args.spectral_norm, num_classes=cond)

    # optimisers: Adam(lr, b1 0.5) for each network
    g_tx, d_tx = optax.adam(args.lr, b1=0.5), optax.adam(args.lr, b1=0.5)
    b = args.batch_size
    z_spec = jax.ShapeDtypeStruct((b, args.z_dim), jnp.float32)
    x_spec, y_spec = jax.ShapeDtypeStruct((b, 28, 28, 1), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32)
    state = init_gan_state(G, D, (z_spec, y_spec) if cond else z_spec, (x_spec, y_spec) if cond else x_spec,
                           g_tx, d_tx, args.seed)

    # step: one D update, then one G update against the new D, and G's EMA (deepcore.gan.step)
    step = gan_train_step(G, D, g_tx, d_tx, z_dim=args.z_dim, loss=losses.LOSSES[args.loss],
                          penalty=None if args.penalty == "none" else args.penalty, penalty_weight=args.penalty_weight,
                          num_classes=cond, ema_decay=args.ema_decay, compiler_options=YNN_FUSION if args.ynn else None,
                          compute_dtype=jnp.bfloat16 if args.precision == "bfloat16" else None)

    # evaluation: fixed latents' Fréchet distance of G and its EMA, and samples.png
    quality, evaluate = evaluation(args, G, score, n_fid, num_classes, cond)
    at_init = quality(state.g_params, state.g_state)
    print(f"Fréchet distance at initialisation: {at_init['fid']:.3f}", flush=True)

    # the loop: --steps / --epochs and/or --minutes of training time (evaluations excluded, continued by --resume)
    pipe = make_batches({"image": train_arrays["image"], "label": train_arrays["label"]}, b, seed=args.seed)
    total, minutes = generators.length(args, pipe.steps_per_epoch)
    budget = TimeBudget(minutes, total, spent_before(args.out) if args.resume else 0.0)
    eval_every = min(args.eval_every, total or args.eval_every)
    result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps,
                 eval_step=budget.excluded(evaluate), eval_batches=lambda: [None], eval_every=eval_every,
                 out_dir=args.out, checkpoint_every=eval_every, resume=args.resume, log_every=min(100, eval_every),
                 time_left=budget.time_left)
    return report(args, result, budget, evaluate, at_init, known, clf_path, cond, t_start)


def report(args, result, budget, evaluate, at_init: dict, known: dict, clf_path: str, cond, t_start: float):
    """The final Fréchet distances (and class match), curves.png and results.json (``known``: the floor, the
    samples per score, the classifier's accuracy)."""
    from deepcore.interpret import training_curves

    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    state, steps_done, train_s = result.state, result.step, budget.train_s
    final = evaluate(state)
    training_curves(args.out, keys=("d_loss", "g_loss", "fid", "ema_fid"))
    metrics = {"fid_final": final["fid"], "ema_fid_final": final["ema_fid"], **known, "fid_at_init": at_init["fid"],
               "train_minutes": train_s / 60}
    if cond:
        metrics.update(class_match=final["class_match"], ema_class_match=final["ema_class_match"],
                       class_match_at_init=at_init["class_match"])
    print(f"after {steps_done} steps ({train_s / 60:.1f} min of training): Fréchet distance {final['fid']:.3f} "
          f"(EMA G {final['ema_fid']:.3f}), floor {known['fid_floor_test_vs_train']:.3f}, "
          f"at init {at_init['fid']:.3f}", flush=True)
    rate = steps_done * args.batch_size / train_s if train_s > 0 else None
    return common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                                steps=steps_done, train_examples_per_s=rate,
                                extra={"stop_reason": result.stop_reason, "classifier": clf_path})


if __name__ == "__main__":
    common.run(main, add_flags(common.parser("gan", __doc__.splitlines()[0], batch_size=64, lr=2e-4)))
