"""Will it fit: compile a training step for a target mesh from abstract arrays only and report per-device bytes.

Nothing is allocated: the state is ``jax.eval_shape`` of its initialisation, given shardings as
``ShapeDtypeStruct(..., sharding=...)``, and the step is ``jax.jit(...).lower(...).compile()``d; the byte
counts come from ``compiled.memory_analysis()`` (arguments, outputs, temporaries, donated aliases) and,
split into parameters and optimiser state, from each array's shard shape. On a CPU the mesh's devices are
simulated (``jax_num_cpu_devices``; also when the default backend has fewer devices than the mesh), so a
64-device layout is checked on one machine::

    python -m deepcore.train.fit_report --model lm --d-model 2048 --layers 18 --heads 16 --vocab 50304 \\
        --seq 2048 --batch 64 --mesh fsdp=8,tensor=8 --device-memory 80GB

exits 1 with one line when the per-device total exceeds ``--device-memory``. An experiment recipe's config
(:mod:`deepcore.train.fit_configs`: mlp, cnn, vit, char_transformer), by its flags or from a run::

    python -m deepcore.train.fit_report --experiment cnn --widths 64 128 256 --batch-size 512 \\
        --devices 8 --mesh fsdp=8 --device-memory 16GB
    python -m deepcore.train.fit_report --config runs/cnn-X/results.json --mesh data=2,tensor=4 --json

The temporaries are those of the backend that compiled (XLA:CPU here); a GPU's are similar in size but not
identical.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

GIB = 1024 ** 3


def abstract_state(model, spec, tx, seed: int = 0):
    """The ``TrainState`` of ``init_state(model, spec, tx)`` as ``ShapeDtypeStruct`` leaves (nothing allocated)."""
    import jax

    from deepcore.train.state import init_state
    return jax.eval_shape(lambda: init_state(model, spec, tx, seed))


def memory_report(loss_fn, tx, state, batch, mesh, rules="default", *, axes=None) -> dict:
    """Per-device bytes of one compiled train step of ``loss_fn`` on ``mesh`` under ``rules``.

    ``state``/``batch``: arrays or ``ShapeDtypeStruct``s. Returns ``params``, ``opt_state`` (from shard
    shapes), ``arguments``, ``outputs``, ``temporaries``, ``aliased`` (compiled memory analysis) and
    ``total = arguments + outputs - aliased + temporaries``."""
    import jax

    from deepcore.train import sharding as S
    from deepcore.train.step import make_update

    kw = S.step_shardings(state, mesh, rules, axes=axes, tx=tx)
    ss, bs = kw["state_sharding"], kw["batch_sharding"]
    shaped = lambda t, s: jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), t, s)
    step = jax.jit(make_update(S.with_rules(loss_fn, mesh, rules), tx), donate_argnums=0,
                   in_shardings=(ss, bs), out_shardings=(ss, jax.sharding.NamedSharding(mesh, jax.P())))
    batch_shardings = jax.tree.map(lambda _: bs, batch)
    ma = step.lower(shaped(state, ss), shaped(batch, batch_shardings)).compile().memory_analysis()
    out = {"params": S.per_device_bytes(state.params, ss.params),
           "opt_state": S.per_device_bytes(state.opt_state, ss.opt_state),
           "arguments": int(ma.argument_size_in_bytes), "outputs": int(ma.output_size_in_bytes),
           "temporaries": int(ma.temp_size_in_bytes), "aliased": int(ma.alias_size_in_bytes)}
    out["total"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temporaries"]
    return out


def size(text: str) -> int:
    """``"80GB"``/``"80GiB"``/``"512MB"``/bytes -> bytes (binary units: 1 GB = 2**30 bytes here)."""
    t = text.strip().upper().replace("IB", "B")
    for unit, mult in (("TB", 1024 ** 4), ("GB", GIB), ("MB", 1024 ** 2), ("KB", 1024), ("B", 1)):
        if t.endswith(unit):
            return int(float(t[:-len(unit)]) * mult)
    return int(float(t))


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 1024 ** 2:.1f} MiB"


def describe(report: dict) -> str:
    """One line: the per-device total and its parts."""
    return (f"{_gib(report['total'])} per device (params {_gib(report['params'])}, optimiser state "
            f"{_gib(report['opt_state'])}, temporaries {_gib(report['temporaries'])}, arguments "
            f"{_gib(report['arguments'])}, outputs {_gib(report['outputs'])}, donated {_gib(report['aliased'])})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deepcore.train.fit_report", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["lm"], default="lm")
    p.add_argument("--d-model", type=int, default=2048)
    p.add_argument("--layers", type=int, default=18)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--seq", type=int, default=2048, help="tokens per sequence (and max_len)")
    p.add_argument("--batch", type=int, default=64, help="global batch (sequences per step)")
    p.add_argument("--mesh", default="data=8", help="axis sizes, e.g. data=8 or fsdp=8,tensor=8")
    p.add_argument("--rules", default="default", help="a named rule set of deepcore.train.sharding.RULE_SETS")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--remat", default=None, help="per-block remat policy (e.g. nothing)")
    p.add_argument("--device-memory", default=None, help="e.g. 80GB: exit 1 when the step needs more")
    return p


def _devices(n: int):
    """``n`` devices: the default backend's, or ``n`` simulated CPU devices when it has fewer (call before JAX
    computes anything)."""
    import jax
    jax.config.update("jax_num_cpu_devices", n)
    devices = jax.devices()
    return (devices if len(devices) >= n else jax.devices("cpu"))[:n]


def _verdict(what: str, report: dict, device_memory, as_json: bool) -> int:
    if device_memory and report["total"] > size(device_memory):
        print(f"fit_report: {what}: does not fit: needs {describe(report)}, more than the "
              f"{_gib(size(device_memory))} of device memory", file=sys.stderr)
        return 1
    print(json.dumps(dict(report, what=what)) if as_json else f"{what}: {describe(report)}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.split("=")[0] in ("--experiment", "--config") for a in argv):
        return experiment_main(argv)
    args = parser().parse_args(argv)
    import jax
    import jax.numpy as jnp

    from deepcore.train import sharding as S
    shape = S.parse_mesh(args.mesh)
    devices = _devices(math.prod(shape.values()))
    import optax

    from deepcore.models.transformer import TransformerLM
    from deepcore.train.step import classifier_loss

    model = TransformerLM(vocab_size=args.vocab, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                          max_len=args.seq, remat=args.remat)
    spec = jax.ShapeDtypeStruct((args.batch, args.seq), jnp.int32)
    tx = optax.adam(1e-4) if args.optimizer == "adam" else optax.sgd(1e-2)
    state = abstract_state(model, spec, tx)
    n_params = sum(math.prod(a.shape) for a in jax.tree.leaves(state.params))
    mesh = S.make_mesh(shape, devices)
    report = memory_report(classifier_loss(model), tx, state, {"x": spec, "y": spec}, mesh, args.rules,
                           axes=S.logical_axes(model, spec))
    what = (f"lm d_model={args.d_model} layers={args.layers} heads={args.heads} vocab={args.vocab} seq={args.seq} "
            f"batch={args.batch} ({n_params / 1e9:.2f}B params, {args.optimizer}"
            f"{', remat ' + args.remat if args.remat else ''}) on mesh {args.mesh}")
    return _verdict(what, report, args.device_memory, False)


def experiment_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deepcore.train.fit_report", description="Will an experiment "
                                "recipe's config fit: its flags after these (e.g. --devices 8 --mesh fsdp=8)")
    p.add_argument("--experiment", help="a recipe of experiments/: mlp, cnn, vit or char_transformer")
    p.add_argument("--config", help="a run's results.json: its experiment and flags (flags given after it override)")
    p.add_argument("--device-memory", default=None, help="e.g. 16GB: exit 1 when the step needs more")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def experiment_main(argv) -> int:
    """``--experiment NAME [recipe flags]`` or ``--config RUN/results.json [recipe flags]``: the recipe's step
    (:mod:`deepcore.train.fit_configs`) on its ``--mesh`` (default data-parallel over ``--devices``)."""
    args, rest = experiment_parser().parse_known_args(argv)
    import jax

    from deepcore.train import fit_configs
    from deepcore.train import sharding as S
    config, where = None, ""   # where: what a rule error is about, once the model is built
    if args.config:
        with open(args.config) as f:
            run = json.load(f)
        config, args.experiment = dict(run["config"], vocab_size=run.get("vocab_size")), run["experiment"]
    try:
        if args.experiment not in fit_configs.EXPERIMENTS:
            raise ValueError(f"--experiment: expected one of {', '.join(fit_configs.EXPERIMENTS)}, "
                             f"got {args.experiment}")
        cfg = fit_configs.recipe_flags(args.experiment, config, rest)
        mesh_text = cfg.mesh or f"data={cfg.devices}"
        devices = _devices(cfg.devices)
        built = fit_configs.build(args.experiment, cfg)
        state = abstract_state(built.model, built.spec, built.tx)
        where = f"--rules {cfg.rules} on --mesh {mesh_text}: "
        report = memory_report(built.loss_fn, built.tx, state, built.batch, S.make_mesh(mesh_text, devices),
                               cfg.rules, axes=S.logical_axes(built.model, built.spec))
    except ValueError as e:
        print(f"fit_report: error: {where}{e}", file=sys.stderr)
        return 2
    report["parameters"] = sum(math.prod(a.shape) for a in jax.tree.leaves(state.params))
    what = f"{built.what} ({report['parameters']:,} params, adamw) on mesh {mesh_text}"
    return _verdict(what, report, args.device_memory, args.json)


if __name__ == "__main__":
    sys.exit(main())
