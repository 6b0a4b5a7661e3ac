"""DDPM on Fashion-MNIST: a small U-Net predicting the noise, EMA weights, DDIM samples, the GAN's Fréchet distance.

    python experiments/diffusion.py                                  # 15 minutes of training
    python experiments/diffusion.py --minutes 60 --eval-at-minutes 15   # one run, the distance at 15 and 60 min
    python experiments/diffusion.py --smoke --out /tmp/d

Recipe: images in [-1, 1]; a cosine noise schedule over 1000 steps; deepcore.models.unet (channels 16-32-64 at
28, 14 and 7 pixels, a residual block with the time embedding per level, self-attention at 7x7) trained on DDPM's
simple loss (the noise's mean squared error) by Adam (1e-3 after a 200-step warm-up, gradients clipped at norm 1);
an EMA (0.999) of the weights samples by deterministic DDIM (eta 0, 20 steps, x0 clipped to [-1, 1]) from fixed
noise. Sample quality as experiments/gan.py measures it (deepcore.gan.fid: its cached classifier, ``--fid-samples``
(5,000) training images as the reference, its floor test vs train), at each ``--eval-at-minutes`` mark and at the
end. Evaluations do not count as training time.
"""
import os
import time

import common
import flagcheck
import generators
from generators import MINUTES


def add_flags(p):
    p.add_argument("--minutes", type=float, default=None,
                   help="training-time budget in minutes, evaluations excluded (default: 15 when neither "
                        "--steps nor --epochs is given)")
    p.add_argument("--eval-at-minutes", type=float, nargs="*", default=[],
                   help="also measure the Fréchet distance after these minutes of training (below --minutes)")
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64], help="U-Net channels per level")
    p.add_argument("--attention", type=int, nargs="*", default=[2], help="levels with self-attention (0 = 28x28)")
    p.add_argument("--schedule", choices=("cosine", "linear"), default="cosine")
    p.add_argument("--timesteps", type=int, default=1000, help="diffusion steps T")
    p.add_argument("--ddim-steps", type=int, default=20, help="DDIM sampling steps (of the T)")
    p.add_argument("--warmup", type=int, default=200, help="learning-rate warm-up steps")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--eval-every", type=int, default=500, help="steps between validation losses and checkpoints")
    p.add_argument("--fid-samples", type=int, default=5000, help="images per side of each Fréchet distance")
    generators.rules(p, "diffusion")
    flagcheck.rule(p, "--precision", "float32 (the diffusion script computes in float32)",
                   lambda v, a: v == "float32")
    flagcheck.rule(p, "--eval-at-minutes", lambda a: f"values > 0 below --minutes {a.minutes or MINUTES:g}",
                   lambda v, a: all(0 < m < (a.minutes or MINUTES) for m in v))
    flagcheck.rule(p, "--channels", "1 to 4 positive multiples of 8",
                   lambda v, a: 1 <= len(v) <= 4 and all(c > 0 and c % 8 == 0 for c in v))
    flagcheck.rule(p, "--attention", "levels below the number of --channels",
                   lambda v, a: all(0 <= i < len(a.channels) for i in v))
    flagcheck.at_least(p, 2, "--timesteps", "--fid-samples")
    flagcheck.at_least(p, 1, "--ddim-steps", "--eval-every")
    flagcheck.at_least(p, 0, "--warmup")
    flagcheck.rule(p, "--ddim-steps", "at most --timesteps {timesteps}", lambda v, a: v <= a.timesteps)
    flagcheck.rate(p, "--ema-decay")
    return p


def data(args):
    """``(train, test, n_fid)``: the images (--smoke: slices, U-Net 8-16-16, <= 4 DDIM steps), n_fid per side."""
    _, train, test, n_fid = generators.data(args, "U-Net")
    if args.smoke:
        args.channels, args.ddim_steps = [8, 16, 16], min(args.ddim_steps, 4)
    return train, test, n_fid


def feature_space(args, train, test, n_fid):
    """``(score, floor, classifier path)``: gan.py's fixed feature space (cached classifier), its floor."""
    score, fid_floor, clf_path, trained_now = generators.reference_space(args, train, test, n_fid)
    print(f"classifier {'trained and saved to' if trained_now else 'loaded from'} {clf_path}; Fréchet distance "
          f"floor (test vs train, {n_fid} each) {fid_floor:.3f}", flush=True)
    return score, fid_floor, clf_path


def model_and_step(args, score, n_fid):
    """``(state, step, val_loss, quality)``: DDPM's loss on the U-Net, Adam with warm-up and clipping, the EMA in
    the state; quality(state): the EMA's DDIM samples' Fréchet distance (fixed noise; 100 to samples.png)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from deepcore.diffusion import ddim_sample, denoising_loss, schedule
    from deepcore.gan import fid
    from deepcore.gan.grid import save_grid
    from deepcore.models.unet import unet
    from deepcore.train import eval_step, init_state, train_step

    net = unet(args.channels, attention_at=args.attention)
    sched = schedule(args.schedule, args.timesteps)
    b = args.batch_size
    spec = (jax.ShapeDtypeStruct((b, 28, 28, 1), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32))
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adam(optax.linear_schedule(args.lr / max(args.warmup, 1), args.lr, args.warmup)))
    state = init_state(net, spec, tx, args.seed, ema=True)
    loss = denoising_loss(net, sched, x="image")
    step, val_loss = train_step(loss, tx, ema_decay=args.ema_decay), eval_step(loss, use_ema=True)
    gen = jax.jit(lambda p, z: ddim_sample(lambda x, t: net.apply(p, {}, (x, t))[0], sched, z, args.ddim_steps,
                                           clip=1.0))
    fid_z = jax.random.normal(jax.random.PRNGKey(4321), (n_fid, 28, 28, 1))
    grid_z = jax.random.normal(jax.random.PRNGKey(1234), (100, 28, 28, 1))

    def generate(params, z):
        return np.concatenate([np.asarray(gen(params, z[i:i + fid.BATCH])) for i in range(0, len(z), fid.BATCH)])

    def quality(state):
        save_grid(generate(state.ema, grid_z), os.path.join(args.out, "samples.png"), 10)
        return score(generate(state.ema, fid_z))

    return state, step, val_loss, quality


def main(args):
    from deepcore.data import make_batches
    from deepcore.train import MetricsLog, TimeBudget, fit, read_metrics, spent_before

    common.devices(args.devices)
    t_start = time.perf_counter()
    train, test, n_fid = data(args)
    score, fid_floor, clf_path = feature_space(args, train, test, n_fid)
    state, step, val_loss, quality = model_and_step(args, score, n_fid)
    val_batch = {"image": test["image"][:1000]}   # the EMA's loss on fixed test images

    # the loop: one fit per segment up to each --eval-at-minutes mark and --minutes (or --steps / --epochs);
    # after each, the Fréchet distance (once: a resumed run reads the marks it passed from metrics.jsonl)
    pipe = make_batches({"image": train["image"]}, args.batch_size, seed=args.seed)
    total, minutes = generators.length(args, pipe.steps_per_epoch)
    marks = sorted(m for m in args.eval_at_minutes if minutes and m < minutes) + [minutes]
    label = lambda m: "end" if m == marks[-1] else m   # the "mark" of each Fréchet distance's record
    eval_every, result = min(args.eval_every, total or args.eval_every), None
    for i, mark in enumerate(marks):
        if (args.resume or i) and label(mark) in {r["mark"] for r in read_metrics(args.out) if "mark" in r}:
            continue
        budget = TimeBudget(mark, total, spent_before(args.out) if args.resume or i else 0.0)
        result = fit(step, state, budget.batches(pipe.batches), steps=budget.fit_steps,
                     eval_step=budget.excluded(val_loss), eval_batches=lambda: [val_batch], eval_every=eval_every,
                     out_dir=args.out, checkpoint_every=eval_every, resume=args.resume or i > 0,
                     log_every=min(100, eval_every), time_left=budget.time_left)
        if result.stop_reason == "nonfinite":
            raise common.UsageError(result.message)
        state, train_s, t0 = result.state, budget.train_s, time.perf_counter()   # the clock stops here
        record = {"step": result.step, "split": "val", "mark": label(mark), "val_fid": quality(state),
                  "val_train_s": train_s,
                  **{f"val_{k}": float(v) for k, v in val_loss(state, val_batch).items()}}
        record["eval_s"] = time.perf_counter() - t0
        with MetricsLog(args.out, resume_step=result.step) as log:
            log.append(record)
        print(f"after {result.step} steps ({train_s / 60:.1f} min of training): Fréchet distance (EMA) "
              f"{record['val_fid']:.3f} (floor {fid_floor:.3f}; {record['eval_s']:.0f} s to sample and score)",
              flush=True)
    return report(args, marks, fid_floor, n_fid, clf_path, result, t_start)


def report(args, marks, fid_floor, n_fid, clf_path, result, t_start):
    """results.json from the marks' records in metrics.jsonl, and curves.png."""
    from deepcore.interpret import training_curves
    from deepcore.train import read_metrics

    at_marks = {r["mark"]: r for r in read_metrics(args.out) if "mark" in r}
    final = at_marks["end"]
    training_curves(args.out, keys=("loss", "fid"))
    metrics = {"ema_fid_final": final["val_fid"], "fid_floor_test_vs_train": fid_floor, "fid_samples": n_fid,
               "val_loss_final": final["val_loss"], "train_minutes": final["val_train_s"] / 60,
               "ddim_steps": args.ddim_steps, "eval_seconds_final": final["eval_s"],
               **{f"ema_fid_at_{m:g}_min": at_marks[m]["val_fid"] for m in marks[:-1] if m in at_marks}}
    steps_done, train_s = final["step"], final["val_train_s"]
    rate = steps_done * args.batch_size / train_s if train_s > 0 else None
    return common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=time.perf_counter() - t_start,
                                steps=steps_done, train_examples_per_s=rate,
                                extra={"stop_reason": result and result.stop_reason, "classifier": clf_path})


if __name__ == "__main__":
    common.run(main, add_flags(common.parser("diffusion", __doc__.splitlines()[0], batch_size=128, lr=1e-3)))
