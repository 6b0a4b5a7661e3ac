"""The steps the image-classifier recipes (mlp.py, cnn.py, vit.py; seq_classify.py's data, optimiser and summary)
share, each named for what it does; each recipe calls them in order (data -> model -> optimiser -> step ->
evaluation -> its own ``fit`` call -> report), so the loop stays in the script. JAX is imported inside the
functions: a refused flag never imports it."""
import functools
import json
import time
from typing import Any, Callable, NamedTuple

import common
import flagcheck
import meshes

EVAL_BATCH = 500


def load_splits(args, names):
    """``(info, *arrays)``: uint8 images and int32 labels of each split in ``names`` (with --smoke its first
    examples, ``flagcheck.IMAGE_SMOKE``)."""
    from deepcore.data import load

    splits = load(args.dataset, names, data_dir=args.data_dir,
                  max_examples=tuple(flagcheck.IMAGE_SMOKE[s] for s in names) if args.smoke else None)
    return (splits[0].info, *(ds.arrays for ds in splits))


def check_data(args, info, num_train: int) -> None:
    """The flag rules that need the data: --batch-size at most the training split, --tta flip only on images."""
    if args.batch_size > num_train:  # needs the split's size: right after loading, before compiling
        raise common.UsageError(f"--batch-size: expected at most {num_train} (the {args.dataset} training "
                                f"split), got {args.batch_size}")
    if args.tta == "flip" and len(info.shape) != 3:
        raise common.UsageError(f"--tta flip needs images (height, width, channels); {args.dataset} gives {info.shape}")


def devices(args):
    """``(devices, compute dtype)`` for --devices and --precision."""
    import jax.numpy as jnp

    return common.devices(args.devices), jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32


def adamw_cosine(args, steps_per_epoch: int):
    """``(steps, eval_every, tx)``: AdamW on the kernels, linear warm-up then cosine decay to lr / 1000."""
    import optax

    from deepcore import tree

    steps = common.num_steps(args, steps_per_epoch, smoke_steps=6)
    every = max(1, round(args.eval_every * steps_per_epoch)) if not args.smoke else max(1, steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(1, int(args.warmup * steps)), max(steps, 2),
                                                  end_value=args.lr * 1e-3)
    return steps, every, optax.adamw(schedule, weight_decay=args.weight_decay, mask=tree.decay_mask)


def classifier_step(args, model, info, tx, devs, cdt):
    """``(state, step, compiler_options, mesh, put_batch)``: the placed train state and the label-smoothed
    cross-entropy step, data-parallel over ``devs`` or sharded by --mesh/--rules (``common.mesh_plan``), XLA's
    YNNPACK fusion on CPUs with --ynn-fusion on."""
    import jax
    import jax.numpy as jnp

    from deepcore.train import classifier_loss, train_step
    from deepcore.train.compile_options import YNN_FUSION

    spec = jax.ShapeDtypeStruct((args.batch_size,) + info.shape, jnp.uint8)
    state, mesh, shardings, wrap_loss, put = meshes.mesh_plan(args, devs, model, spec, tx)
    options = YNN_FUSION if args.ynn_fusion == "on" and jax.default_backend() == "cpu" else None
    step = train_step(wrap_loss(classifier_loss(model, x="image", y="label", label_smoothing=args.label_smoothing)),
                      tx, compute_dtype=None if cdt == jnp.float32 else cdt, grad_norm=False, compiler_options=options,
                      **shardings)
    return state, step, options, mesh, put


class Evaluation(NamedTuple):
    """What :func:`evaluation` builds: eval-mode ``logits(state, x) -> (B, C)``; ``evaluate(arrays,
    args=(state,), prefix=)``, exact over a whole split; ``clock()``, the seconds of this run; the ``mesh``."""
    logits: Callable
    evaluate: Callable
    clock: Callable
    mesh: Any

    def eval_step(self, split):
        """``fit``'s ``eval_step``: ``split``'s metrics under the state, with ``wall_s`` (read first)."""
        return lambda state, _: {"wall_s": self.clock(), **self.evaluate(split, args=(state,))}


def evaluation(args, model, mesh, cdt, options, t_start: float) -> Evaluation:
    """The :class:`Evaluation` of these flags: in the compute dtype, mirror-averaged with --tta flip, in batches of
    ``EVAL_BATCH`` over ``mesh``; the clock counts from ``t_start``, summed over resumed segments."""
    import jax.numpy as jnp

    from deepcore.train import classifier_eval, evaluate_split
    from deepcore.train.budget import last_checkpointed

    logits, per_example = classifier_eval(model, compute_dtype=None if cdt == jnp.float32 else cdt,
                                          tta=args.tta == "flip")
    offset = last_checkpointed(args.out, "val_wall_s") if args.resume else 0.0
    evaluate = functools.partial(evaluate_split, per_example, batch_size=EVAL_BATCH, mesh=mesh,
                                 compiler_options=options)
    return Evaluation(logits, evaluate, lambda: offset + time.perf_counter() - t_start, mesh)


def announce(args, state, num_train: int, val, test, steps: int, devs) -> int:
    """Print the run's one-line summary; returns the parameter count."""
    from deepcore import tree

    n_params = tree.param_count(state.params)
    print(f"{args.experiment}: {n_params:,} parameters, {num_train} train / {len(val['label'])} validation "
          f"/ {len(test['label'])} test examples of {args.dataset}, {steps} steps of {args.batch_size} on "
          f"{len(devs)} {devs[0].platform} device(s), {args.precision}", flush=True)
    return n_params


def report(args, result, model, info, test, ev: Evaluation, *, n_params: int, saliency: bool):
    """After ``fit``: the test split's metrics and class probabilities, then results.json, curves.png,
    calibration.json, reliability.png (and with ``saliency`` saliency.png: |d logit(true class) / d pixel| of 8
    test images). A non-finite stop is one line (exit 2)."""
    import jax

    from deepcore.interpret import classifier_files, training_curves
    from deepcore.train import eval_summary, predict, read_metrics

    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    state = result.state
    run = dict(ev.evaluate(test, args=(state,), prefix="test_"), wall_s=ev.clock())
    probs = predict(lambda s, x: jax.nn.softmax(ev.logits(s, x), -1), test["image"], EVAL_BATCH, args=(state,),
                    mesh=ev.mesh)
    summary = eval_summary(read_metrics(args.out))
    rate = summary.pop("train_examples_per_s")
    metrics = {"test_accuracy": run["test_accuracy"], "test_loss_nats": run["test_loss"], **summary}
    training_curves(args.out)
    pictures = {}
    if saliency:
        pictures = dict(logits_fn=lambda x: model.apply(state.params, state.model_state, x)[0], images=test["image"])
    metrics.update(classifier_files(args.out, probs, test["label"], info.class_names, **pictures))
    res = common.write_results(args, dataset=args.dataset, metrics=metrics, wall_s=run["wall_s"], steps=result.step,
                               train_examples_per_s=rate,
                               extra={"parameters": n_params, "stop_reason": result.stop_reason})
    print(json.dumps({"test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
                      "wall_s": res["wall_s"], "steps": result.step, "out": args.out}))
    return res
