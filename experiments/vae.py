"""A convolutional VAE on Fashion-MNIST: the test ELBO in bits per dimension, reconstructions and samples.

    python experiments/vae.py                      # the BUILD_NOTES.md run
    python experiments/vae.py --smoke --out /tmp/v

Model: encoder [conv k4 s2 - SiLU] x (32, 64) - dense 256 - SiLU - dense 2L (posterior mean | log-variance),
decoder its mirror giving each pixel a logistic (loc, log-scale) discretised over the 256 levels (deepcore.vae),
so -ELBO / (784 ln 2) honestly bounds the bits/dim. Loss: the one-sample negative ELBO in bits/dim, Adam with
cosine decay. Reports the test ELBO and its rec/KL parts, with --iw-samples K the K-sample importance-weighted
bound on the first --iw-examples test images; also curves.png, reconstructions.png and samples.png (see pictures).
"""
import functools
import json
import math
import os
import time

import common
import flagcheck

EVAL_BATCH = 500


def parser():
    p = common.parser("vae", __doc__.splitlines()[0], epochs=10, batch_size=128, lr=2e-3)
    p.add_argument("--latent-dim", type=int, default=32, help="size of z")
    p.add_argument("--channels", type=int, nargs=2, default=[32, 64], help="encoder conv features (decoder: reversed)")
    p.add_argument("--hidden", type=int, default=256, help="the dense layer between convolutions and z, both ways")
    p.add_argument("--eval-every", type=float, default=1.0, help="evaluate (and checkpoint) every this many epochs")
    p.add_argument("--iw-samples", type=int, default=64, help="K of the importance-weighted bound (0: skip it)")
    p.add_argument("--iw-examples", type=int, default=1000, help="test images the importance-weighted bound covers")
    flagcheck.at_least(p, 1, "--latent-dim", "--channels", "--hidden", "--iw-examples")
    flagcheck.at_least(p, 0, "--iw-samples")
    flagcheck.above(p, 0, "--eval-every")
    flagcheck.rule(p, "--batch-size", f"at most {flagcheck.IMAGE_SMOKE['train']} with --smoke (its training slice)",
                   lambda v, a: not a.smoke or v <= flagcheck.IMAGE_SMOKE["train"])
    flagcheck.image_dataset(p)
    return p


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree, vae
    from deepcore.data import make_batches
    from deepcore.models.vae import VAE, conv_decoder, conv_encoder
    from deepcore.train import evaluate_split, fit, init_state, parallel, train_step
    from deepcore.train.budget import last_checkpointed

    # data: uint8 images; then the devices and their mesh
    train, val, test, info = data(args)
    devs = common.devices(args.devices)
    mesh = parallel.make_mesh(devs)
    cdt = None if args.precision == "float32" else jnp.bfloat16

    # model: encoder and decoder from conv, dense and phase transposed-conv layers
    encoder = conv_encoder(args.latent_dim, channels=args.channels, hidden=args.hidden)
    decoder = conv_decoder(channels=args.channels[::-1], base=info.shape[0] // 4, out_channels=info.shape[2],
                           hidden=args.hidden)
    model = VAE(encoder, decoder)

    # optimiser: Adam, cosine decay to lr / 100
    pipe = make_batches(train, args.batch_size, seed=args.seed, process_index=0, process_count=1)
    steps = common.num_steps(args, pipe.steps_per_epoch, smoke_steps=6)
    every = max(1, round(args.eval_every * pipe.steps_per_epoch)) if not args.smoke else max(1, steps // 2)
    tx = optax.adam(optax.cosine_decay_schedule(args.lr, max(steps, 1), alpha=0.01))

    # step: the one-sample negative ELBO in bits/dim, data-parallel over the mesh
    state = init_state(model, jax.ShapeDtypeStruct((args.batch_size,) + info.shape, jnp.float32), tx, args.seed)
    shardings = parallel.step_shardings(state, mesh)
    state = parallel.place_state(state, shardings["state_sharding"])
    step = train_step(vae.elbo_loss(encoder, decoder, x="image"), tx, compute_dtype=cdt, **shardings)

    # evaluation: exact over whole splits
    dims = math.prod(info.shape)
    enc, dec, per_example, iw_bound = evaluators(args, encoder, decoder, dims)
    evaluate = functools.partial(evaluate_split, batch_size=EVAL_BATCH, mesh=mesh)
    offset = last_checkpointed(args.out, "val_wall_s") if args.resume else 0.0
    clock = lambda: offset + time.perf_counter() - t_start   # seconds of this run, over resumed segments

    # the loop: fit, evaluating the validation ELBO every --eval-every epochs; then the test split
    n_params = tree.param_count(state.params)
    print(f"{args.experiment}: {n_params:,} parameters, {len(train['image'])} train / {len(val['image'])} validation "
          f"/ {len(test['image'])} test images of {args.dataset}, {steps} steps of {args.batch_size} on "
          f"{len(devs)} {devs[0].platform} device(s), {args.precision}", flush=True)
    result = fit(step, state, pipe.batches, steps=steps, eval_batches=lambda: [None], eval_every=every,
                 eval_step=lambda state, _: {"wall_s": clock(), **evaluate(per_example, val, args=(state,))},
                 out_dir=args.out, checkpoint_every=every, resume=args.resume, log_every=max(1, min(100, every)),
                 put_batch=lambda b: b if b is None else parallel.shard_batch(b, mesh))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    metrics = final_metrics(args, evaluate, per_example, iw_bound, result.state, test)
    pictures(args, jax.jit(enc), jax.jit(dec), result.state, test["image"])
    return report(args, result, metrics, clock(), n_params, dims)


def data(args):
    """train/validation/test {"image": uint8 (N, H, W, C)} (--smoke: each split's first rows), the latter two
    with "index" (N,) keying each row's posterior draw, and the dataset info; refuses bad batch sizes/shapes."""
    import numpy as np

    from deepcore.data import load

    splits = load(args.dataset, ("train", "validation", "test"), data_dir=args.data_dir,   # --smoke: its slices
                  max_examples=tuple(flagcheck.IMAGE_SMOKE.values()) if args.smoke else None)
    info = splits[0].info
    train, val, test = ({"image": ds.arrays["image"]} for ds in splits)
    for arrays in (val, test):
        arrays["index"] = np.arange(len(arrays["image"]), dtype=np.int32)
    if args.batch_size > len(train["image"]):  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {len(train['image'])} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if info.shape[0] % 4 or info.shape[1] != info.shape[0]:
        raise common.UsageError(f"--dataset {args.dataset}: this VAE needs square images with a side divisible by 4, "
                                f"got {info.shape}")
    return train, val, test, info


def evaluators(args, encoder, decoder, dims: int):
    """enc(state, x), dec(state, z) and per-batch per_example (one-sample ELBO, its rec/KL parts) and iw_bound
    (the --iw-samples bound), in bits/dim; each image's draw is keyed by its "index" (any batching, same value)."""
    import jax

    from deepcore import vae

    enc = lambda s, x: encoder.apply(s.params["encoder"], {}, x)[0]   # noqa: E731
    dec = lambda s, z: decoder.apply(s.params["decoder"], {}, z)[0]   # noqa: E731
    row_keys = lambda b: jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(args.seed + 1), i))(b["index"])

    def per_example(state, batch):
        t = jax.vmap(lambda x, k: vae.elbo_terms(functools.partial(enc, state), functools.partial(dec, state),
                                                 x[None], k))(batch["image"], row_keys(batch))
        rec, kl = (vae.bits_per_dim(t[n][:, 0], dims) for n in ("rec", "kl"))
        return {"loss": rec + kl, "rec_bpd": rec, "kl_bpd": kl}

    def iw_bound(state, batch):
        lower = jax.vmap(lambda x, k: vae.importance_weighted_bound(
            functools.partial(enc, state), functools.partial(dec, state), x[None], k, args.iw_samples))(
            batch["image"], row_keys(batch))
        return {"iw_bpd": vae.bits_per_dim(-lower[:, 0], dims)}

    return enc, dec, per_example, iw_bound


def final_metrics(args, evaluate, per_example, iw_bound, state, test: dict) -> dict:
    """Test ELBO and parts in bits/dim; with --iw-samples, the bound and ELBO on the first --iw-examples images."""
    names = {"loss": "elbo", "rec_bpd": "rec", "kl_bpd": "kl"}
    metrics = {f"test_{names[k]}_bits_per_dim": v for k, v in evaluate(per_example, test, args=(state,)).items()}
    if args.iw_samples:
        sub = {k: v[:args.iw_examples] for k, v in test.items()}
        metrics[f"test_iw{args.iw_samples}_bits_per_dim"] = evaluate(iw_bound, sub, args=(state,))["iw_bpd"]
        metrics["test_iw_subset_elbo_bits_per_dim"] = evaluate(per_example, sub, args=(state,))["loss"]
    return metrics


def pictures(args, enc, dec, state, images):
    """reconstructions.png (5 pairs of rows: 10 test images, then their reconstructions at the posterior mean)
    and samples.png (100 decoded prior draws); each pixel the decoder's loc, clipped to [0, 1]."""
    import jax
    import numpy as np

    from deepcore.gan.grid import save_grid

    def mean_image(z):   # the loc channels, drawn in [-1, 1] as save_grid expects
        out = np.asarray(dec(state, z))
        return np.clip(out[..., :out.shape[-1] // 2], 0, 1) * 2 - 1

    x = images[:50].astype(np.float32) / 255
    rec = mean_image(np.asarray(enc(state, x))[:, :args.latent_dim])
    rows = np.stack([x.reshape(5, 10, *x.shape[1:]) * 2 - 1, rec.reshape(5, 10, *rec.shape[1:])], 1)
    save_grid(rows.reshape(100, *x.shape[1:]), os.path.join(args.out, "reconstructions.png"), 10)
    z = jax.random.normal(jax.random.PRNGKey(1234), (100, args.latent_dim))
    save_grid(mean_image(z), os.path.join(args.out, "samples.png"), 10)


def report(args, result, metrics: dict, wall_s: float, n_params: int, dims: int):
    """curves.png and results.json (the test metrics, the last validation ELBO, nats per image)."""
    from deepcore.interpret import training_curves
    from deepcore.train import read_metrics

    records = read_metrics(args.out)
    vals = [r for r in records if r.get("split") == "val"]
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    metrics = dict(metrics, test_neg_elbo_nats=metrics["test_elbo_bits_per_dim"] * dims * math.log(2),
                   val_elbo_bits_per_dim=vals[-1].get("val_loss") if vals else None)
    training_curves(args.out, keys=("loss", "rec_bpd", "kl_bpd"))
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=wall_s, steps=result.step,
                               train_examples_per_s=rates[-1] if rates else None,
                               extra={"parameters": n_params, "stop_reason": result.stop_reason,
                                      "likelihood": "discretised logistic, 256 levels"})
    print(json.dumps({k: metrics[k] for k in metrics if k.startswith("test_")} | {"wall_s": res["wall_s"],
                                                                                 "out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
