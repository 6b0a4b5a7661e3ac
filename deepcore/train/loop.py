"""The training loop: progress, JSON-lines metrics, evaluation, early stopping, NaN guard, exact resume.

::

    step = train_step(classifier_loss(model), tx)
    result = fit(step, state, batches, steps=5000, out_dir="runs/mlp",
                 eval_step=eval_step(classifier_loss(model)), eval_batches=val_batches, eval_every=500,
                 checkpoint_every=500, early_stopping=EarlyStopping("val_loss", patience=3))

Data contract: ``batches(start_step)`` yields batches (dicts of numpy arrays; in a multi-process run,
this process's rows) in exactly the order an uninterrupted run sees them from ``start_step``. Together
with the per-step PRNG key ``fold_in(seed_key, step)`` this makes resuming after a kill bit-identical
to never having stopped. ``eval_batches()`` yields the validation batches.

The non-finite guard: the loss and gradient norm are read one step late (so the device keeps a step
queued); before every checkpoint, evaluation and return the whole state (parameters, optimiser state,
EMA, model state) is checked too (:mod:`deepcore.train.guard`), so neither a checkpoint nor the caller
ever gets a NaN or infinite value, whatever the step reports (``grad_norm=False``, a NaN learning rate).
Faults on disk (:mod:`deepcore.train.checkpoint`, :mod:`deepcore.train.damage`,
:mod:`deepcore.train.runlock`): one run per ``out_dir`` (a second raises ``RunLocked``); on resume a
damaged newest checkpoint is reported and set aside; a full disk raises ``CheckpointWriteError``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import jax
import numpy as np

from deepcore.train.checkpoint import Checkpointer
from deepcore.train.guard import describe, nonfinite_paths
from deepcore.train.mfu import utilisation
from deepcore.train.parallel import fetch
from deepcore.train.progress import Progress, shown
from deepcore.train.runlock import RunLock


class EarlyStopping(NamedTuple):
    """Stop when ``metric`` (an eval metric, e.g. ``"val_loss"``) has not improved by ``min_delta``
    for ``patience`` evaluations in a row. ``mode``: ``"min"`` or ``"max"``."""

    metric: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0


class FitResult(NamedTuple):
    state: object          # the final state; after a NaN stop the last good checkpoint's, None without one
    step: int              # updates applied in ``state`` (without one: the step training started from)
    stop_reason: str       # "done", "early_stop", "nonfinite", "time_budget" or "data_exhausted"
    message: str
    history: list          # every record also written to metrics.jsonl
    best: Optional[float]  # best value of the early-stopping metric


def evaluate(eval_fn: Callable, state, batches: Iterable, put_batch: Callable = lambda b: b,
             prefix: str = "val_") -> dict:
    """Mean of ``eval_fn(state, batch)`` metrics over ``batches``, keys prefixed with ``prefix``."""
    total, n = None, 0
    for batch in batches:
        m = fetch(eval_fn(state, put_batch(batch)))
        total = m if total is None else jax.tree.map(np.add, total, m)
        n += 1
    if n == 0:
        raise ValueError("evaluate: the eval batches were empty")
    return {prefix + k: _scalar(v / n) for k, v in total.items()}


def _step(state) -> int:
    """The state's step (a population's members share one)."""
    return int(np.ravel(fetch(state.step))[0])


def _scalar(v):
    v = np.asarray(v)
    return float(v) if v.ndim == 0 else v.astype(float).tolist()


def _early_stop(es: EarlyStopping, ev: dict, meta: dict, t: int) -> Optional[str]:
    """Update ``meta`` (best, bad_evals) with evaluation ``ev``; the stop message when patience has run out."""
    if es.metric not in ev:
        raise KeyError(f"early stopping metric {es.metric!r} not among eval metrics {sorted(ev)}")
    v, best = ev[es.metric], meta["best"]
    if not isinstance(v, float):
        raise ValueError(f"early stopping needs a scalar {es.metric!r}, got {v!r} (a population?)")
    better = best is None or (v < best - es.min_delta if es.mode == "min" else v > best + es.min_delta)
    meta["best"], meta["bad_evals"] = (v, 0) if better else (best, meta["bad_evals"] + 1)
    if meta["bad_evals"] < es.patience:
        return None
    return (f"early stopping at step {t}: {es.metric} has not improved on {meta['best']:.6g} "
            f"for {es.patience} evaluations")


def _truncate_jsonl(path: str, after_step: int) -> list:
    """Drop records past ``after_step`` (logged by a run killed before its next checkpoint); return the rest."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    kept = [r for r in records if r.get("step", 0) <= after_step]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    return kept


def fit(step_fn: Callable, state, batches: Callable[[int], Iterator], *, steps: Optional[int],
        eval_step: Optional[Callable] = None, eval_batches: Optional[Callable[[], Iterable]] = None,
        eval_every: Optional[int] = None, early_stopping: Optional[EarlyStopping] = None,
        out_dir: Optional[str] = None, checkpoint_every: Optional[int] = None, keep: int = 3, resume: bool = True,
        log_every: int = 100, put_batch: Callable = lambda b: b, stream=None, tty: Optional[bool] = None,
        time_left: Optional[Callable[[], float]] = None) -> FitResult:
    """Train ``state`` with ``step_fn(state, batch) -> (state, metrics)`` up to ``steps`` total updates
    (``None``: until the batches run out).

    * ``out_dir``: writes ``metrics.jsonl`` and checkpoints (``out_dir/checkpoints``), holding
      ``out_dir/run.lock`` meanwhile; with ``resume`` it continues from the newest intact checkpoint there,
      if any (``state`` is then only the layout template); without, existing checkpoints are an error.
    * ``eval_every``: run ``eval_step`` over ``eval_batches()`` every that many steps and at the end.
    * ``checkpoint_every``: save every that many steps (and at the end), keeping the last ``keep``.
    * ``put_batch``: host batch -> device batch (e.g. ``partial(parallel.shard_batch, mesh=mesh)``).
    * ``time_left``: seconds left of a time budget whose batches stop when it is spent; the progress ETA
      uses it, and the stop is reported as ``"time_budget"`` rather than ``"data_exhausted"``.
    * A non-finite ``loss`` or ``grad_norm``, or a non-finite value anywhere in the state about to be saved,
      evaluated or returned, stops training with a message naming the step and the quantity or arrays.
    Only process 0 prints and writes metrics; every process must call ``fit`` (checkpoints are collective).
    """
    if (steps is not None and steps < 0) or log_every < 1 or (eval_every is not None and eval_every < 1) or \
            (checkpoint_every is not None and checkpoint_every < 1):
        raise ValueError(f"fit: steps must be >= 0 and log_every, eval_every, checkpoint_every >= 1; got "
                         f"steps={steps}, log_every={log_every}, eval_every={eval_every}, "
                         f"checkpoint_every={checkpoint_every}")
    if eval_every and (eval_step is None or eval_batches is None):
        raise ValueError("fit: eval_every needs eval_step and eval_batches")
    stream = sys.stdout if stream is None else stream
    main = jax.process_index() == 0
    with contextlib.ExitStack() as stack:
        if out_dir and main:
            lock = stack.enter_context(RunLock(out_dir))
            if lock.stale:
                stream.write(f"{out_dir}: taking over the lock of pid {lock.stale.get('pid')} on host "
                             f"{lock.stale.get('host')}, which is no longer running\n")
        ckpt = None
        if out_dir and checkpoint_every:
            ckpt = stack.enter_context(Checkpointer(os.path.join(out_dir, "checkpoints"), keep=keep))
        jsonl = os.path.join(out_dir, "metrics.jsonl") if out_dir else None
        meta = {"best": None, "bad_evals": 0}
        history, notices = [], []
        if ckpt is not None and ckpt.latest_step() is not None:
            if not resume:
                raise FileExistsError(f"{ckpt.directory} already holds checkpoints (newest: step "
                                      f"{ckpt.latest_step()}); resume from them or choose a new output directory")
            state, saved = ckpt.restore_intact(state, check=nonfinite_paths, say=notices.append)
            meta.update(saved)
        start = _step(state)
        if jsonl and main:
            history = _truncate_jsonl(jsonl, start) if resume else []
            if not resume and os.path.exists(jsonl):
                os.remove(jsonl)
        log_file = stack.enter_context(open(jsonl, "a")) if jsonl and main else None

        def record(rec: dict):
            history.append(rec)
            if log_file:
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()

        for line in notices:  # damaged checkpoints set aside on resume
            record({"step": start, "event": "damaged_checkpoint", "message": line})
            if main:
                stream.write(line + "\n")
        it = iter(batches(start))
        progress = None
        window, pending, t = [], None, start
        stop_reason, message = "done", ""

        def check(pending_step, pending_metrics) -> Optional[str]:
            host = {k: _scalar(v) for k, v in fetch(pending_metrics).items()}
            window.append(host)
            for name, what in (("loss", "loss"), ("grad_norm", "gradients")):
                if name in host and not np.all(np.isfinite(host[name])):
                    value = host[name]
                    return f"non-finite {what} ({name}={value}) at step {pending_step}"
            return None

        def check_state(step_no: int) -> Optional[str]:
            """The whole state, before it is saved, evaluated or returned."""
            bad = nonfinite_paths(state)
            return f"non-finite values in {describe(bad)} after step {step_no}" if bad else None

        def log_train(step_no: int):
            if not window:
                return
            mean = {k: _scalar(np.mean([w[k] for w in window], axis=0)) for k in window[0]}
            window.clear()
            steps_s, _ = progress.rate(step_no)
            rec = {"step": step_no, "split": "train", **mean}
            if progress.examples_per_step and steps_s == steps_s:
                rec["examples_per_s"] = steps_s * progress.examples_per_step
            rec.update(utilisation(step_fn, steps_s))  # MFU and device memory, where known
            now = time.perf_counter()
            if now > data_clock["since"]:  # share of the wall time the loop spent waiting for (and placing) batches
                rec["data_wait_fraction"] = data_clock["wait"] / (now - data_clock["since"])
            data_clock.update(wait=0.0, since=now)
            record(rec)
            if main:
                progress.log(step_no, mean)

        def stopped(bad: str) -> str:
            last = ckpt.latest_step() if ckpt is not None else None
            return bad + "; training stopped; " + (f"last good checkpoint: step {last} in {ckpt.directory}"
                                                   if last is not None else "no checkpoint kept, no state returned")

        data_clock = {"wait": 0.0, "since": time.perf_counter()}
        while steps is None or t < steps:
            waited = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                if time_left is not None and time_left() <= 0:
                    stop_reason, message = "time_budget", f"time budget spent at step {t}"
                else:
                    stop_reason, message = "data_exhausted", f"the batches ran out at step {t}"
                break
            if progress is None:
                rows = jax.tree.leaves(batch)[0].shape[0] * jax.process_count()
                progress = Progress(steps, start, stream, tty, rows, time_left)
            device_batch = put_batch(batch)
            data_clock["wait"] += time.perf_counter() - waited
            state, metrics = step_fn(state, device_batch)
            t += 1
            if t == start + 1:  # time from the end of the first (compiling) step
                jax.block_until_ready(metrics)
                data_clock.update(wait=0.0, since=time.perf_counter())
                progress.t0, progress.s0 = time.perf_counter(), t
            bad = check(*pending) if pending is not None else None
            pending = (t, metrics)
            at_eval = bool(eval_every and eval_step is not None and (t % eval_every == 0 or t == steps))
            at_ckpt = bool(ckpt is not None and (t % checkpoint_every == 0 or t == steps))
            if bad is None and (at_eval or at_ckpt or t % log_every == 0 or t == steps):
                bad, pending = check(*pending), None
            if bad is None and (at_eval or at_ckpt):
                bad = check_state(t)
            if bad is not None:
                stop_reason, message = "nonfinite", stopped(bad)
                record({"step": t, "event": "nonfinite", "message": message})
                break
            if main and window:
                progress.update(t, window[-1])
            if t % log_every == 0 or t == steps:
                log_train(t)
            stop = None
            if at_eval:
                ev = evaluate(eval_step, state, eval_batches(), put_batch)
                record({"step": t, "split": "val", **ev})
                if main:
                    progress.message(f"eval at step {t}: {shown(ev)}")
                if early_stopping is not None:
                    stop = _early_stop(early_stopping, ev, meta, t)
                    if stop is not None:
                        stop_reason, message = "early_stop", stop
            if ckpt is not None and (at_ckpt or stop):
                ckpt.save(t, state, meta)
            if stop:
                break
        if stop_reason != "nonfinite":
            bad = check(*pending) if pending is not None else None
            bad = bad or (check_state(t) if t > start else None)
            if bad is not None:
                stop_reason, message = "nonfinite", stopped(bad)
                record({"step": t, "event": "nonfinite", "message": message})
        if stop_reason == "nonfinite":
            if ckpt is not None and ckpt.latest_step() is not None:
                ckpt.wait()
                state, _ = ckpt.restore(state)
            else:
                state = None
        elif ckpt is not None and ckpt.latest_step() != t and t > start:
            ckpt.save(t, state, meta)
        if progress is not None and main:
            if window:
                log_train(t)
            progress.update(t if state is None else _step(state), history[-1] if history else {}, force=True)
            if message:
                progress.message(message)
            elif progress.tty:
                progress.message("")
        return FitResult(state, start if state is None else _step(state), stop_reason, message, history, meta["best"])
