"""The plumbing the generative recipes (gan.py, diffusion.py) share, each part named for what it does: their
flag rules, the 28x28x1 images with their --smoke slices, the fixed feature space of the Fréchet distance and
the training length. Each recipe still builds its model, optimiser and step and calls ``fit`` itself. JAX is
imported inside the functions: a refused flag never imports it."""
import common
import flagcheck

SMOKE = {"train": 2048, "test": 512, "fid": 256}   # a --smoke run's training / test images, images per Fréchet side
MINUTES = 15.0   # the time budget when neither --steps nor --epochs is given


def rules(p, name: str) -> None:
    """The shared flag rules: one device, --minutes > 0, a --smoke batch within its training slice, an image
    dataset (``name``: the script, for the one-device message)."""
    flagcheck.rule(p, "--devices", f"1 (the {name} script runs on one device)", lambda v, a: v == 1)
    flagcheck.above(p, 0, "--minutes")
    flagcheck.rule(p, "--batch-size", f"at most {SMOKE['train']} with --smoke (its training slice)",
                   lambda v, a: not a.smoke or v <= SMOKE["train"])
    flagcheck.image_dataset(p)


def data(args, model: str):
    """``(info, train, test, n_fid)``: the 28x28x1 training and test arrays (--smoke: their first ``SMOKE``
    images) and the images per side of a Fréchet distance (--fid-samples, at most either split's size and
    ``SMOKE["fid"]`` with --smoke). ``model`` names the network in the refusal of other image shapes."""
    from deepcore.data import load

    train, test = load(args.dataset, ("train", "test"), data_dir=args.data_dir,   # --smoke: only its slices are read
                       max_examples=(SMOKE["train"], SMOKE["test"]) if args.smoke else None)
    if train.info.shape != (28, 28, 1):
        raise common.UsageError(f"--dataset {args.dataset}: this {model} makes 28x28x1 images, got {train.info.shape}")
    if args.batch_size > len(train.arrays["label"]):  # needs the split's size: right after loading
        raise common.UsageError(f"--batch-size: expected at most {len(train.arrays['label'])} (the {args.dataset} "
                                f"training {'slice of --smoke' if args.smoke else 'split'}), got {args.batch_size}")
    n_fid = min(args.fid_samples, SMOKE["fid"]) if args.smoke else args.fid_samples
    return train.info, train.arrays, test.arrays, min(n_fid, len(test.arrays["label"]), len(train.arrays["label"]))


def reference_space(args, train, test, n_fid: int):
    """``deepcore.gan.fid.reference_space`` for these flags: ``(score, floor, classifier path, trained now)``, the
    classifier cached in --data-dir (in --out with --smoke or without --data-dir), trained for 2 epochs (0.1 with
    --smoke)."""
    from deepcore.gan import fid

    cache_dir = args.out if args.smoke or not args.data_dir else args.data_dir
    return fid.reference_space(train, test, n_fid, cache_dir=cache_dir, dataset=args.dataset,
                               epochs=0.1 if args.smoke else 2.0)


def length(args, steps_per_epoch: int):
    """``(total steps or None, minutes or None)``: --steps / --epochs and/or --minutes of training (``MINUTES``
    when none is given); --smoke: at most 4 steps."""
    timed = args.steps is None and args.epochs is None
    total = None if timed else common.num_steps(args, steps_per_epoch, smoke_steps=4)
    if args.smoke:
        total = min(total or 4, 4)
    return total, MINUTES if timed and args.minutes is None else args.minutes
