"""Multi-step forecasting of real series (bundled with statsmodels) against naive, seasonal-naive and linear AR.

    python experiments/forecast.py                              # the BUILD_NOTES.md run (unemp, GRU)
    python experiments/forecast.py --dataset co2 --model tcn    # any series of deepcore.data.SERIES, any model
    python experiments/forecast.py --quantiles 0.1,0.5,0.9      # pinball loss; the 80% interval's coverage
    python experiments/forecast.py --smoke --out /tmp/forecast

Windows of --input-len values -> the next --horizon, split in time 70/15/15, scaled by the training part; the model
(deepcore.models.forecast) against naive, seasonal-naive and linear AR; MASE and sMAPE; results.json and plots.
"""
import json
import time
from types import SimpleNamespace

import common
import flagcheck

SPLIT, SMOKE_STEPS = (0.7, 0.15, 0.15), 20   # train/validation/test fractions in time order; steps of --smoke


def quantile_list(text):
    return [float(q) for q in text.split(",")] if text else []


def parser():
    p = common.parser("forecast", __doc__.splitlines()[0], dataset="unemp", steps=500, batch_size=32, lr=3e-3)
    p.add_argument("--model", choices=("gru", "lstm", "tcn", "transformer", "linear"), default="gru", help="the "
                   "network ('linear': its linear highway alone, trained the same way: an ablation)")
    p.add_argument("--horizon", type=int, default=None, help="steps forecast from each origin (default: the "
                   "series' season length, at most 12)")
    p.add_argument("--input-len", type=int, default=None, help="past values the forecasters read (default: "
                   "three seasons, at least 12)")
    p.add_argument("--quantiles", type=quantile_list, default=[], help="comma-separated levels in (0, 1), e.g. "
                   "0.1,0.5,0.9: train with the pinball loss, forecast the median, report the outer interval")
    p.add_argument("--hidden", type=int, default=16, help="width of the network")
    p.add_argument("--depth", type=int, default=1, help="recurrent layers, TCN blocks or transformer blocks")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--patch", type=int, default=4, help="transformer: steps per token")
    p.add_argument("--highway", choices=("on", "off"), default="on", help="the linear path from the lags")
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--eval-every", type=int, default=100, help="steps between validation scores and checkpoints")
    flagcheck.at_least(p, 1, "--horizon", "--input-len", "--hidden", "--depth", "--patch", "--eval-every")
    flagcheck.at_least(p, 0, "--weight-decay")
    flagcheck.rate(p, "--dropout")
    flagcheck.rule(p, "--quantiles", "distinct levels in (0, 1) including 0.5", lambda v, a: not v or (
        0.5 in v and len(set(v)) == len(v) and all(0 < q < 1 for q in v)))
    flagcheck.rule(p, "--dataset", lambda a: f"one of {', '.join(_series_names())}",
                   lambda v, a: v in _series_names(), last=True)
    return p


def _series_names():
    from deepcore.data.series import SERIES

    return sorted(SERIES)


def data(args):
    """The series' windows per split (x: (N, input_len), y: (N, horizon)); scaling from the training part only."""
    import numpy as np

    from deepcore.data import load_series, split_windows

    series = load_series(args.dataset)
    m = series.period
    horizon = args.horizon or (min(m, 12) if m > 1 else 4)
    input_len = args.input_len or max(3 * m, 12)
    try:
        train, val, test = split_windows(series.values, SPLIT, input_len, horizon)
    except ValueError as e:
        raise common.UsageError(f"--input-len {input_len} --horizon {horizon}: too long for {args.dataset} "
                                f"({len(series.values)} steps): {e}")
    insample = series.values[:len(train["x"]) + input_len + horizon - 1]
    mu, sd = insample.mean(), insample.std()
    scaled = lambda w: {"x": ((w["x"] - mu) / sd).astype(np.float32), "y": ((w["y"] - mu) / sd).astype(np.float32)}
    if args.batch_size > len(train["x"]):
        raise common.UsageError(f"--batch-size: expected at most {len(train['x'])} (the training windows), "
                                f"got {args.batch_size}")
    return SimpleNamespace(series=series, m=m, horizon=horizon, input_len=input_len, train=train, val=val,
                           test=test, insample=insample, mu=mu, sd=sd, scaled=scaled)


def model_and_objective(args, horizon):
    """--model over the window; Q outputs per step (1: the median by MAE; else the pinball loss's levels)."""
    from deepcore import losses
    from deepcore.models.forecast import forecaster

    qs = args.quantiles
    model = forecaster(args.model, horizon, num_quantiles=max(1, len(qs)), hidden=args.hidden, depth=args.depth,
                       patch=args.patch, dropout=args.dropout, highway=args.highway == "on")

    def objective(pred, batch):
        return losses.pinball(pred, batch["y"], qs) if qs else losses.mae(pred[..., 0], batch["y"])

    return model, objective, qs.index(0.5) if qs else 0


def scorers(model, d):
    """predict(state, windows) -> (N, H, Q) in the series' units, quantiles sorted; scores(pred, y) -> MASE, sMAPE."""
    import jax
    import numpy as np

    from deepcore import metrics

    apply = jax.jit(lambda s, x: model.apply(s.params, s.model_state, x)[0])

    def predict(state, w):
        return np.sort(np.asarray(apply(state, d.scaled(w)["x"]), np.float64) * d.sd + d.mu, axis=-1)

    def scores(pred, y):
        return {"mase": float(metrics.mase(pred, y, d.insample, d.m)), "smape": float(metrics.smape(pred, y))}

    return predict, scores


def main(args):
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax

    from deepcore import tree
    from deepcore.data import make_batches
    from deepcore.train import fit, init_state, train_step
    from deepcore.train.objectives import prediction_loss

    common.devices(args.devices)
    d = data(args)
    model, objective, point = model_and_objective(args, d.horizon)
    steps = common.num_steps(args, max(1, len(d.train["x"]) // args.batch_size), smoke_steps=SMOKE_STEPS)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(1, steps // 20), max(steps, 2), args.lr * 1e-2)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=args.weight_decay,
                                                                 mask=tree.decay_mask))
    state = init_state(model, jax.ShapeDtypeStruct((args.batch_size, d.input_len), jnp.float32), tx, args.seed)
    step = train_step(prediction_loss(model, objective), tx)
    predict, scores = scorers(model, d)

    pipe = make_batches(d.scaled(d.train), args.batch_size, seed=args.seed)   # the loop: validating every --eval-every
    every = min(args.eval_every, steps)
    print(f"forecast: {args.model}, {tree.param_count(state.params):,} parameters; {args.dataset} "
          f"({d.series.frequency}, {len(d.series.values)} steps, season {d.m}): {len(d.train['x'])} train / "
          f"{len(d.val['x'])} validation / {len(d.test['x'])} test windows of {d.input_len} -> {d.horizon}",
          flush=True)
    result = fit(step, state, pipe.batches, steps=steps, eval_batches=lambda: [None], eval_every=every,
                 eval_step=lambda s, _: scores(predict(s, d.val)[..., point], d.val["y"]), out_dir=args.out,
                 checkpoint_every=every, resume=args.resume, log_every=min(100, every))
    if result.stop_reason == "nonfinite":
        raise common.UsageError(result.message)
    preds = {split: predict(result.state, getattr(d, split)) for split in ("val", "test")}
    return report(args, d, result, preds, point, scores, time.perf_counter() - t_start)


def report(args, d, result, preds, point, scores, wall):
    """The test table (the network and every baseline; the validation one in results.json), results.json,
    curves.png and forecast.png."""
    import numpy as np

    from deepcore import metrics
    from deepcore.interpret import training_curves
    from deepcore.interpret.forecast_plot import save_forecast
    from deepcore.models.forecast_baselines import baselines

    horizon, input_len, qs, x, y, pred = d.horizon, d.input_len, args.quantiles, d.test["x"], d.test["y"], preds["test"]
    tables = {split: {args.model: preds[split][..., point], **baselines(d.train, getattr(d, split)["x"], horizon, d.m)}
              for split in ("val", "test")}
    val_rows, rows = ({k: scores(v, getattr(d, sp)["y"]) for k, v in tables[sp].items()} for sp in ("val", "test"))
    wins = lambda rs: all(rs[args.model][s] < rs[k][s] for k in rs if k != args.model  # noqa: E731
                          for s in ("mase", "smape"))
    out = {f"{split}_{s}_{k}": r[s] for split, rs in (("val", val_rows), ("test", rows)) for k, r in rs.items()
           for s in ("mase", "smape")}
    out.update(test_mase=rows[args.model]["mase"], test_smape=rows[args.model]["smape"], test_windows=len(y),
               beats_all_baselines=wins(rows), val_beats_all_baselines=wins(val_rows), horizon=horizon,
               input_len=input_len)
    out.update(dict(test_interval_coverage=float(metrics.interval_coverage(pred[..., 0], pred[..., -1], y)),
                    interval_nominal=qs[-1] - qs[0]) if qs else {})
    print(f"{'test, ' + str(len(y)) + ' windows':<24}{'MASE':>8}{'sMAPE %':>10}")
    for k, r in rows.items():
        print(f"{k:<24}{r['mase']:>8.3f}{r['smape']:>10.2f}")
    print(f"{args.model} beats every baseline on MASE and sMAPE: {out['beats_all_baselines']} (on the "
          f"{len(d.val['y'])} validation windows: {out['val_beats_all_baselines']})" + (
        f"; {qs[0]}-{qs[-1]} interval coverage {out['test_interval_coverage']:.3f} (nominal "
        f"{out['interval_nominal']:.2f})" if qs else ""), flush=True)
    # forecast.png: forecasts from origins one horizon apart, pieced together over the test part
    origins = np.arange(0, len(y), horizon)
    piece = lambda f: np.concatenate([f[o] for o in origins])   # noqa: E731
    band = (piece(pred[..., 0]), piece(pred[..., -1])) if qs else None
    save_forecast(f"{args.out}/forecast.png", x[0], piece(y), {k: piece(v) for k, v in tables["test"].items()},
                  band=band, band_label=f"{args.model} {qs[0]}-{qs[-1]} quantiles" if qs else "",
                  title=f"{d.series.name}: {horizon}-step forecasts from origins {horizon} steps apart (test part)",
                  origins=origins)
    training_curves(args.out, keys=("loss", "mase", "smape"))
    res = common.write_results(args, dataset=args.dataset, metrics=out, wall_s=wall, steps=result.step,
                               train_examples_per_s=None, extra={"stop_reason": result.stop_reason,
                                                                 "series": d.series.description})
    print(json.dumps({k: out[k] for k in ("test_mase", "test_smape", "beats_all_baselines")} | {"out": args.out}))
    return res


if __name__ == "__main__":
    common.run(main, parser())
