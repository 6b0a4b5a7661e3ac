"""Flag values checked right after parsing, before any data is read or anything is compiled.

A failed check is one line on stderr, ``experiments/NAME.py: error: --flag: expected ..., got ...``, naming
the first flag that failed and the value given, and exit status 2. Checked here:

* every float flag (and every entry of a list of floats) is finite: no ``nan``, ``inf``;
* the rules a script registers with :func:`rule` (ranges, ``--heads`` dividing ``--d-model``, ...), in order;
* ``--data-dir`` is a directory when it exists; ``--dataset`` is a name the script's loader knows
  (:func:`image_dataset`, :func:`text_dataset`).

What needs the data (a ``--batch-size`` larger than a full training split) is checked by the script right
after loading, before compiling.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable


class Parser(argparse.ArgumentParser):
    """argparse's own refusals (an unknown flag, ``--batch-size x``) as one line too, without the usage text."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def rule(p, flag: str, expected, ok: Callable, *, last: bool = False) -> None:
    """Register ``ok(value, args) -> bool`` for ``flag`` (``"--d-model"``) on parser ``p``.

    ``expected`` completes "expected ...": a string formatted with the parsed flags (``"a divisor of
    --d-model {d_model}"``) or a function of them. A ``None`` value (not given, no default) is not checked.
    ``last``: checked after every other rule (for checks that import something slow)."""
    if not hasattr(p, "flag_rules"):
        p.flag_rules = []
    p.flag_rules.append((last, len(p.flag_rules), flag, expected, ok))


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def failure(p, args) -> str | None:
    """The first failed check as ``"--flag: expected ..., got ..."``, or None when every flag is fine."""
    for action in p._actions:
        value = getattr(args, action.dest, None)
        if action.type is float and value is not None:
            values = value if isinstance(value, list) else [value]
            if not all(math.isfinite(v) for v in values):
                return f"{action.option_strings[-1]}: expected a finite number, got {_show(value)}"
    for _, _, flag, expected, ok in sorted(getattr(p, "flag_rules", []), key=lambda r: r[:2]):
        value = getattr(args, _dest(flag))
        if value is not None and not ok(value, args):
            text = expected(args) if callable(expected) else expected.format(**vars(args))
            return f"{flag}: expected {text}, got {_show(value)}"
    return None


def check(p, args) -> None:
    """Exit with status 2 and one line on stderr at the first failed check."""
    message = failure(p, args)
    if message:
        Parser.error(p, message)


# ----------------------------------------------------------------------------- the shared rules

def common_rules(p) -> None:
    """Rules of the flags every script has (see ``common.parser``)."""
    at_least(p, 1, "--batch-size", "--devices", "--steps")
    rule(p, "--batch-size", "a multiple of --devices {devices}", lambda v, a: v % a.devices == 0)
    above(p, 0, "--lr", "--epochs")
    rule(p, "--data-dir", "a directory (or a path to create), not a file",
         lambda v, a: not os.path.exists(os.path.expanduser(v)) or os.path.isdir(os.path.expanduser(v)))


def at_least(p, minimum, *flags: str) -> None:
    """Each of ``flags`` (a number or a list of numbers) is ``>= minimum``."""
    for flag in flags:
        rule(p, flag, lambda a, f=flag: f"{'values' if isinstance(getattr(a, _dest(f)), list) else 'a value'} "
                                        f">= {minimum}",
             lambda v, a: min(v if isinstance(v, list) else [v]) >= minimum)


def above(p, minimum, *flags: str) -> None:
    """Each of ``flags`` is ``> minimum``."""
    for flag in flags:
        rule(p, flag, f"a value > {minimum}", lambda v, a: v > minimum)


def rate(p, flag: str) -> None:
    """``flag`` lies in ``[0, 1)``."""
    rule(p, flag, "a number in [0, 1)", lambda v, a: 0 <= v < 1)


def image_dataset(p) -> None:
    """``--dataset`` is one of the image datasets of ``deepcore.data.load``."""
    rule(p, "--dataset", lambda a: f"one of {', '.join(_known('IMAGE_DATASETS'))}",
         lambda v, a: v in _known("IMAGE_DATASETS"), last=True)


IMAGE_SMOKE = {"train": 512, "validation": 256, "test": 256}   # examples of each split in an image --smoke run


def image_flags(p, *, augment: str, weight_decay: float, warmup: float, label_smoothing: float, ynn: str,
                tta: str = "none"):
    """The flags of the image-classifier recipes (mlp.py, cnn.py, vit.py) with their defaults, and their rules."""
    p.add_argument("--augment", default=augment, help="training augmentation: 'none' or '+'-joined 'crop' (random "
                   "crop after padding, 2 px at 28x28, 4 px at 32x32) and 'flip' (left-right)")
    p.add_argument("--weight-decay", type=float, default=weight_decay, help="AdamW decoupled weight decay (kernels)")
    p.add_argument("--warmup", type=float, default=warmup, help="linear warm-up, as a fraction of all steps")
    p.add_argument("--label-smoothing", type=float, default=label_smoothing)
    p.add_argument("--tta", choices=("none", "flip"), default=tta, help="test-time augmentation of every "
                   "evaluation: 'flip' averages the class probabilities of each image and its left-right mirror")
    p.add_argument("--eval-every", type=float, default=1.0, help="evaluate (and checkpoint) every this many epochs")
    p.add_argument("--ynn-fusion", choices=("on", "off"), default=ynn,
                   help="on a CPU, compile the steps with XLA's YNNPACK fusion (faster convolutions)")
    above(p, 0, "--eval-every")
    rate(p, "--warmup")
    rate(p, "--label-smoothing")
    at_least(p, 0, "--weight-decay")
    rule(p, "--batch-size", f"at most {IMAGE_SMOKE['train']} with --smoke (its training slice)",
         lambda v, a: not a.smoke or v <= IMAGE_SMOKE["train"])
    rule(p, "--augment", "'none' or '+'-joined distinct 'crop' and 'flip'", lambda v, a: _augment_ok(v), last=True)
    image_dataset(p)
    return p


def _augment_ok(spec: str) -> bool:
    from deepcore.data.preprocess import augmentation_parts  # imported only when checked (it loads JAX)

    return augmentation_parts(spec) is not None


def mesh_flags(p) -> None:
    """``--mesh`` and ``--rules``: the device mesh and the logical-axis rules (:mod:`deepcore.train.sharding`)."""
    p.add_argument("--mesh", default=None, help="device mesh, e.g. data=2,tensor=4 or fsdp=8 (sizes multiply to "
                   "--devices); default: data-parallel over --devices, parameters replicated")
    p.add_argument("--rules", default="default", help="with --mesh: the logical-axis rules, a named set of "
                   "deepcore.train.sharding.RULE_SETS (default: data/fsdp/tensor by MaxText-style names), then "
                   "',logical=axis' overrides, e.g. default,vocab= (vocabulary whole)")
    rule(p, "--mesh", "name=size[,name=size...] with sizes multiplying to --devices {devices}",
                   lambda v, a: v is None or _mesh_size(v) == a.devices)
    rule(p, "--rules", "a rule set of deepcore.train.sharding.RULE_SETS [,logical=axis...]",
                   lambda v, a: _rule_set_ok(v), last=True)


SMOKE_SIZE = {"d_model": 32, "layers": 2, "heads": 2}   # a transformer recipe's caps under --smoke


def transformer_rules(p) -> None:
    """--d-model, --layers, --heads, --mlp-ratio >= 1, --dropout a rate, --heads divides --d-model (capped too)."""
    at_least(p, 1, "--d-model", "--layers", "--heads", "--mlp-ratio")
    rate(p, "--dropout")
    rule(p, "--heads", "a divisor of --d-model {d_model}", lambda v, a: a.d_model % v == 0)
    width, heads = SMOKE_SIZE["d_model"], SMOKE_SIZE["heads"]
    rule(p, "--heads", lambda a: f"a number that, capped at {heads} by --smoke, divides its width "
                                 f"{min(a.d_model, width)}",
         lambda v, a: not a.smoke or min(a.d_model, width) % min(v, heads) == 0)


def smoke_size(args) -> None:
    """With --smoke: --d-model, --layers and --heads capped at ``SMOKE_SIZE`` (in place)."""
    if args.smoke:
        args.d_model, args.layers, args.heads = (min(getattr(args, k), cap) for k, cap in SMOKE_SIZE.items())


def _mesh_size(text: str):
    from deepcore.train.sharding import parse_mesh   # imported only when checked (it loads JAX)
    try:
        return math.prod(parse_mesh(text).values())
    except ValueError:
        return None


def _rule_set_ok(name: str) -> bool:
    from deepcore.train.sharding import rules_for
    try:
        return bool(rules_for(name))
    except ValueError:
        return False


def text_dataset(p) -> None:
    """``--dataset`` is a text dataset of ``deepcore.data.load_text`` or an existing text file."""
    rule(p, "--dataset", lambda a: f"one of {', '.join(_known('TEXT_DATASETS'))} or the path of a text file",
         lambda v, a: v in _known("TEXT_DATASETS") or os.path.isfile(os.path.expanduser(v)), last=True)


def _known(table: str) -> list:
    from deepcore.data import sources  # imported only when a --dataset is checked (it loads JAX)

    return sorted(getattr(sources, table))
