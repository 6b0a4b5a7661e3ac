"""The training step of an experiment recipe's config, built abstractly for :mod:`deepcore.train.fit_report`.

``build(experiment, cfg)`` -> :class:`Built`: the recipe's model, input spec, batch (``ShapeDtypeStruct``s), loss
and optimiser for its flags ``cfg`` (an ``argparse.Namespace`` of the recipe's parser, or a run's
``results.json`` ``"config"``). Nothing is read or allocated: the image recipes' normalisation statistics are
stand-ins (they change no shape), the datasets' shapes come from :data:`IMAGE_SHAPES`, a language model's
vocabulary from ``cfg.vocab_size`` (a run's results.json has it; else 256, bytes). Known: mlp, cnn, vit
(experiments/{mlp,cnn,vit}.py: normalise + augment, then the network; AdamW) and char_transformer (AdamW).
The optimiser's schedule, clipping and masks change no state size, so plain AdamW stands in for them.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
from types import SimpleNamespace
from typing import Callable, NamedTuple, Optional

IMAGE_SHAPES = {"fashion_mnist": ((28, 28, 1), 10), "mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10)}
EXPERIMENTS = ("mlp", "cnn", "vit", "char_transformer")


class Built(NamedTuple):
    model: object       # the Layer
    spec: object        # the model's input ShapeDtypeStruct
    batch: dict         # the train step's batch, ShapeDtypeStructs
    loss_fn: Callable   # classifier_loss(model, ...) as the recipe's
    tx: object          # the optax optimiser
    what: str           # one line: the experiment, its data and batch


def _net(experiment: str, cfg, shape, classes: int):
    from deepcore.models import cnn, mlp, resnet
    from deepcore.models.vit import ViT

    if experiment == "mlp":
        return mlp.MLP(classes, tuple(cfg.widths), dropout=cfg.dropout, feature_dims=len(shape))
    if experiment == "cnn" and cfg.arch == "resnet":
        return resnet.ResNet(classes, tuple(cfg.widths), tuple(cfg.depths))
    if experiment == "cnn":
        return cnn.VGG(classes, [[w] * d for w, d in zip(cfg.widths, cfg.depths)], dropout=cfg.dropout)
    return ViT(classes, patch_size=cfg.patch_size, d_model=cfg.d_model, num_layers=cfg.layers, num_heads=cfg.heads,
               pool=cfg.pool, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout)


def _image(experiment: str, cfg) -> Built:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from deepcore import tree
    from deepcore.data.preprocess import Preprocess, augmentation
    from deepcore.layers import serial
    from deepcore.train.step import classifier_loss

    if cfg.dataset not in IMAGE_SHAPES:
        raise ValueError(f"--dataset: expected one of {sorted(IMAGE_SHAPES)}, got {cfg.dataset!r}")
    shape, classes = IMAGE_SHAPES[cfg.dataset]
    cdt = jnp.bfloat16 if cfg.precision == "bfloat16" else jnp.float32
    prep = Preprocess(np.zeros(shape[-1], np.float32), np.ones(shape[-1], np.float32),
                      augmentation(cfg.augment, shape[0]), cdt)
    model = serial({"prep": prep, "net": _net(experiment, cfg, shape, classes)})
    spec = jax.ShapeDtypeStruct((cfg.batch_size,) + shape, jnp.uint8)
    batch = {"image": spec, "label": jax.ShapeDtypeStruct((cfg.batch_size,), jnp.int32)}
    loss = classifier_loss(model, x="image", y="label", label_smoothing=cfg.label_smoothing)
    tx = optax.adamw(cfg.lr, weight_decay=cfg.weight_decay, mask=tree.decay_mask)
    return Built(model, spec, batch, loss, tx, f"{experiment} on {cfg.dataset}, batch {cfg.batch_size}")


def _lm(cfg) -> Built:
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore.models.transformer import LMConfig, TransformerLM
    from deepcore.train.step import classifier_loss

    vocab = getattr(cfg, "vocab_size", None) or 256
    model = TransformerLM(LMConfig(vocab_size=vocab, d_model=cfg.d_model, num_layers=cfg.layers,
                                   num_heads=cfg.heads, max_len=cfg.seq_len, positions=cfg.positions,
                                   dropout=cfg.dropout, mlp_ratio=cfg.mlp_ratio))
    spec = jax.ShapeDtypeStruct((cfg.batch_size, cfg.seq_len), jnp.int32)
    tx = optax.adamw(cfg.lr, b2=0.99, weight_decay=cfg.weight_decay)
    return Built(model, spec, {"inputs": spec, "targets": spec}, classifier_loss(model, x="inputs", y="targets"),
                 tx, f"char_transformer (vocabulary {vocab}), batch {cfg.batch_size} x {cfg.seq_len}")


def recipe_flags(experiment: str, config: Optional[dict], argv: list):
    """The recipe's flags: ``experiments/EXPERIMENT.py``'s parser (of this checkout) over ``argv``, ``config`` (a
    run's results.json ``"config"``) as its defaults, checked as the script checks them (one line and exit 2);
    ``--devices`` defaults to the size of a ``--mesh``. Without the experiments folder, ``config`` as it is."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "experiments", f"{experiment}.py")
    if not os.path.isfile(path):
        if config is None or argv:
            raise ValueError(f"--experiment {experiment}: recipe flags need {path}; give --config RUN/results.json "
                             f"alone")
        return SimpleNamespace(**config)
    sys.path.insert(0, os.path.dirname(path))          # the recipe imports common, flagcheck
    spec = importlib.util.spec_from_file_location(f"_recipe_{experiment}", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    p = recipe.parser()
    p.set_defaults(**{k: v for k, v in (config or {}).items() if k not in ("out", "resume")})
    args = p.parse_args(argv)
    if args.mesh and "--devices" not in argv and not (config and config.get("mesh") == args.mesh):
        from deepcore.train.sharding import parse_mesh
        args.devices = math.prod(parse_mesh(args.mesh).values())
    recipe.flagcheck.check(p, args)
    return args


def build(experiment: str, cfg) -> Built:
    """The recipe ``experiment``'s step for flags ``cfg`` (a Namespace or a dict: results.json's ``"config"``)."""
    cfg = SimpleNamespace(**cfg) if isinstance(cfg, dict) else cfg
    if experiment not in EXPERIMENTS:
        raise ValueError(f"--experiment: expected one of {', '.join(EXPERIMENTS)}, got {experiment}")
    return _lm(cfg) if experiment == "char_transformer" else _image(experiment, cfg)


__all__ = ["IMAGE_SHAPES", "EXPERIMENTS", "Built", "recipe_flags", "build"]
