"""What every experiment script shares: the standard flags, devices, the output folder and results.json.

The contract (one script per family, ``python experiments/NAME.py [flags]``):

* flags ``--dataset --data-dir --epochs|--steps --batch-size --lr --seed --out --resume --devices --precision
  --smoke``; defaults reproduce the figure BUILD_NOTES.md reports for the script;
* ``--out`` receives ``results.json``, ``metrics.jsonl``, checkpoints (``--resume`` continues from the newest
  intact one) and pictures (``curves.png`` and a family picture);
* a missing dataset, a bad flag value or an unwritable ``--out`` is one clear line on stderr (exit 2); flag
  values are checked (``flagcheck.py``) before any data is loaded or anything compiled;
* one run per ``--out``: a run holds ``OUT/run.lock`` (its pid and host), a second run on the same folder stops
  with one line (exit 2); the lock of a killed run is recognised as stale and taken over;
* ``--resume`` on a folder without a checkpoint stops with one line (exit 2), creating and changing nothing,
  rather than training from step 0 (a mistyped ``--out`` must not start a new run silently);
* a checkpoint that cannot be written (a full disk) or no intact checkpoint to resume from: one line, exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Callable, Optional

import flagcheck


class UsageError(Exception):
    """A bad flag value or an unusable ``--out``: printed as one line, exit status 2."""


def parser(name: str, description: str, **defaults) -> argparse.ArgumentParser:
    """The standard flags with ``defaults`` (e.g. ``lr=1e-3, batch_size=128, epochs=10``)."""
    d = dict(dataset="fashion_mnist", data_dir=None, epochs=None, steps=None, batch_size=128, lr=1e-3, seed=0,
             devices=1, precision="float32")
    d.update(defaults)
    p = flagcheck.Parser(prog=f"experiments/{name}.py", description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default=d["dataset"], help="TFDS name (or a text file path for language models)")
    p.add_argument("--data-dir", default=d["data_dir"],
                   help="where prepared datasets live and local source files are looked for (default: TFDS's)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=d["epochs"], help="passes over the training split")
    length.add_argument("--steps", type=int, default=d["steps"], help="optimizer updates (instead of --epochs)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="global batch size")
    p.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--out", default=None, help=f"output folder (default: runs/{name}-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--devices", type=int, default=d["devices"],
                   help="data-parallel over N devices (on a CPU, N simulated devices)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default=d["precision"],
                   help="compute dtype (parameters and optimiser state stay float32)")
    p.add_argument("--smoke", action="store_true", help="a tiny run: a few steps on a small slice of the data")
    p.set_defaults(experiment=name)
    flagcheck.common_rules(p)
    return p


def parse(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse flags, check their values, set up devices and the output folder (before JAX starts computing)."""
    args = p.parse_args(argv)
    flagcheck.check(p, args)  # one line and exit 2 at the first bad flag value, before anything is loaded
    if args.resume and not args.out:
        p.error("--resume needs --out (the folder of the run to continue)")
    check_resume(p.prog, args)
    setup_devices(args.devices)
    args.out = args.out or os.path.join("runs", f"{args.experiment}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.makedirs(args.out, exist_ok=True)
        probe = os.path.join(args.out, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        p.error(f"--out {args.out} is not writable: {e.strerror}")
    return args


def has_checkpoint(out: str) -> bool:
    """Whether a ``checkpoints`` folder anywhere under ``out`` holds a committed step (``checkpoints/<step>``)."""
    for root, dirs, _ in os.walk(out):
        if os.path.basename(root) == "checkpoints" and any(d.isdigit() for d in dirs):
            return True
    return False


def check_resume(prog: str, args: argparse.Namespace) -> None:
    """``--resume`` without a checkpoint under ``--out``: one line on stderr and exit 2, before anything is
    created (the choice documented in the module docstring: stop, do not start afresh)."""
    if args.resume and not has_checkpoint(args.out):
        state = "does not exist" if not os.path.isdir(args.out) else "holds no checkpoint"
        print(f"{prog}: error: --resume: {args.out} {state}, so there is nothing to continue; "
              f"run without --resume to start a new run", file=sys.stderr)
        sys.exit(2)


def setup_devices(n: int) -> None:
    """Make ``n`` devices available: on a CPU-only machine, ``n`` simulated CPU devices.

    Must run before JAX's first computation (it only sets configuration)."""
    import jax

    if n > 1 and os.environ.get("JAX_PLATFORMS", "cpu") in ("", "cpu"):
        try:
            jax.config.update("jax_num_cpu_devices", n)
        except RuntimeError:  # backend already up: the device count check below reports it
            pass


def devices(n: int):
    """The first ``n`` devices, or a one-line error saying how many there are."""
    import jax

    have = jax.devices()
    if len(have) < n:
        raise UsageError(f"--devices {n}: only {len(have)} {have[0].platform} device(s) available")
    return have[:n]


def run(main: Callable[[argparse.Namespace], dict], p: argparse.ArgumentParser, argv=None) -> Optional[dict]:
    """Parse flags and call ``main(args)``; known failures become one line on stderr and exit status 2."""
    args = parse(p, argv)  # first: a bad flag value is reported before JAX is even imported
    from deepcore.data import DatasetUnavailable
    from deepcore.train.checkpoint import CheckpointMismatch

    try:
        return locked(main, args, p.prog)
    except (DatasetUnavailable, UsageError, FileExistsError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except CheckpointMismatch as e:
        print(f"{p.prog}: error: --resume: {e}; resume with the flags of that run, or use a new --out",
              file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{p.prog}: interrupted; continue with --resume --out {args.out}", file=sys.stderr)
        sys.exit(130)


def locked(main: Callable[[argparse.Namespace], dict], args: argparse.Namespace, prog: str) -> Optional[dict]:
    """``main(args)`` holding ``--out``'s run lock; a folder in use, a checkpoint that cannot be written or no
    intact checkpoint to resume from is one line on stderr and exit status 2."""
    from deepcore.train.checkpoint import CheckpointWriteError
    from deepcore.train.damage import DamagedCheckpoints
    from deepcore.train.runlock import RunLock, RunLocked

    try:
        with RunLock(args.out) as lock:
            if lock.stale:
                print(f"{prog}: {args.out}: taking over the lock of pid {lock.stale.get('pid')} on host "
                      f"{lock.stale.get('host')}, which is no longer running", file=sys.stderr)
            return main(args)
    except RunLocked as e:
        print(f"{prog}: error: --out {e}", file=sys.stderr)
    except CheckpointWriteError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
    except DamagedCheckpoints as e:
        print(f"{prog}: error: --resume: {e}; move them away or use a new --out", file=sys.stderr)
    sys.exit(2)


def num_steps(args, steps_per_epoch: int, smoke_steps: int = 5) -> int:
    """Total updates from ``--steps`` or ``--epochs`` (``--smoke`` caps it at ``smoke_steps``)."""
    if args.steps is not None:
        total = args.steps
    elif args.epochs is not None:
        total = max(1, round(args.epochs * steps_per_epoch))
    else:
        raise UsageError("give --epochs or --steps")
    return min(total, smoke_steps) if args.smoke else total


def versions() -> dict:
    from importlib.metadata import version

    import deepcore

    return {"python": platform.python_version(), "deepcore": deepcore.__version__,
            **{name: version(name) for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
                                                "tensorflow-datasets")}}


def write_results(args, *, dataset: str, metrics: dict, wall_s: float, steps: int,
                  train_examples_per_s: Optional[float], extra: Optional[dict] = None) -> dict:
    """Write ``results.json`` in ``args.out`` (the documented fields) and return it."""
    import jax

    config = {k: v for k, v in vars(args).items() if k != "experiment"}
    results = {"experiment": args.experiment, "config": config, "dataset": dataset, "metrics": metrics,
               "wall_s": round(wall_s, 2), "train_examples_per_s": train_examples_per_s, "steps": steps,
               "versions": versions(), "devices": [str(d) for d in jax.devices()[:args.devices]],
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    results.update(extra or {})
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results
