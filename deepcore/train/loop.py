"""The training loop ``fit``, composed of named parts a researcher can also use in a loop of their own:
:class:`~deepcore.train.metrics_log.MetricsLog` (metrics.jsonl, TensorBoard, W&B),
:class:`~deepcore.train.progress.Progress`, :class:`~deepcore.train.window.Window` (the logged means),
:class:`~deepcore.train.guard.StepGuard` (the non-finite check), :class:`~deepcore.train.periodic.Every`
(log/eval/checkpoint schedules), :class:`~deepcore.train.early_stopping.EarlyStopping`,
:class:`~deepcore.train.profiler.ProfileWindow` and :func:`~deepcore.train.resume.open_run`.

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
import itertools
import sys
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Tuple, Union

import jax
import numpy as np

from deepcore.train.early_stopping import EarlyStopping
from deepcore.train.guard import StepGuard, host_scalars, state_problem
from deepcore.train.metrics_log import MetricsLog
from deepcore.train.parallel import fetch
from deepcore.train.periodic import Every
from deepcore.train.profiler import ProfileWindow
from deepcore.train.progress import Progress, shown
from deepcore.train.resume import open_run
from deepcore.train.window import Window

__all__ = ["EarlyStopping", "FitResult", "evaluate", "fit"]


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
    return {prefix + k: v for k, v in host_scalars({k: v / n for k, v in total.items()}).items()}


def current_step(state) -> int:
    """The state's step (a population's members share one)."""
    return int(np.ravel(fetch(state.step))[0])


def _check_args(steps, log_every, eval_every, checkpoint_every, eval_step, eval_batches):
    if (steps is not None and steps < 0) or log_every < 1 or (eval_every is not None and eval_every < 1) or \
            (checkpoint_every is not None and checkpoint_every < 1):
        raise ValueError(f"fit: steps must be >= 0 and log_every, eval_every, checkpoint_every >= 1; got "
                         f"steps={steps}, log_every={log_every}, eval_every={eval_every}, "
                         f"checkpoint_every={checkpoint_every}")
    if eval_every and (eval_step is None or eval_batches is None):
        raise ValueError("fit: eval_every needs eval_step and eval_batches")


def _stopped(bad: str, ckpt) -> str:
    last = ckpt.latest_step() if ckpt is not None else None
    return bad + "; training stopped; " + (f"last good checkpoint: step {last} in {ckpt.directory}"
                                           if last is not None else "no checkpoint kept, no state returned")


def _ran_out(t: int, time_left) -> Tuple[str, str]:
    if time_left is not None and time_left() <= 0:
        return "time_budget", f"time budget spent at step {t}"
    return "data_exhausted", f"the batches ran out at step {t}"


def _numbers(start: int, steps: Optional[int]):
    """The step numbers after ``start``: up to ``steps``, or without end (``None``)."""
    return itertools.count(start + 1) if steps is None else range(start + 1, steps + 1)


def _rows(batch) -> int:
    """Examples per step over all processes (``batch``: this process's rows)."""
    return jax.tree.leaves(batch)[0].shape[0] * jax.process_count()


def _show(t: int, window: Window, progress: Progress, step_fn, log: MetricsLog, main: bool, logging: bool) -> None:
    """After step ``t``: the progress display from the latest read metrics, and at a log step the window's record."""
    if main and window.latest:
        progress.update(t, window.latest)
    if logging:
        _log_window(t, window, progress, step_fn, log, main)


def _log_window(t: int, window: Window, progress: Progress, step_fn, log: MetricsLog, main: bool) -> None:
    if window.metrics:
        mean, rec = window.record(t, progress, step_fn)
        log.append(rec)
        if main:
            progress.log(t, mean)


def _evaluate_at(t: int, eval_step, state, eval_batches, put_batch, log: MetricsLog, progress,
                 early_stopping: Optional[EarlyStopping], es: EarlyStopping) -> EarlyStopping:
    """Evaluate at step ``t``, log the ``"val"`` record and show it (``progress`` None: process > 0); returns
    the early-stopping value updated by it (``es`` unchanged without ``early_stopping``)."""
    ev = evaluate(eval_step, state, eval_batches(), put_batch)
    log.append({"step": t, "split": "val", **ev})
    if progress is not None:
        progress.message(f"eval at step {t}: {shown(ev)}")
    return es.update(ev) if early_stopping is not None else es


def _open_log(stack, out_dir, start: int, notices, say, *, resume: bool, tensorboard, wandb, main) -> MetricsLog:
    """The run's :class:`MetricsLog` (truncated past ``start`` on resume), the damaged checkpoints set aside on
    resume (``notices``) logged as events."""
    log = stack.enter_context(MetricsLog(out_dir, resume_step=start if resume else None, tensorboard=tensorboard,
                                         wandb=wandb, write=main))
    for line in notices:
        say(log.event(start, "damaged_checkpoint", line))
    return log


def _first_step_done(metrics, window: Window, progress: Progress, t: int) -> None:
    """Throughput and data wait count from the end of the first (compiling) step."""
    jax.block_until_ready(metrics)
    window.restart()
    progress.restart(t)


def fit(step_fn: Callable, state, batches: Callable[[int], Iterator], *, steps: Optional[int],
        eval_step: Optional[Callable] = None, eval_batches: Optional[Callable[[], Iterable]] = None,
        eval_every: Optional[int] = None, early_stopping: Optional[EarlyStopping] = None,
        out_dir: Optional[str] = None, checkpoint_every: Optional[int] = None, keep: int = 3, resume: bool = True,
        log_every: int = 100, put_batch: Callable = lambda b: b, stream=None, tty: Optional[bool] = None,
        time_left: Optional[Callable[[], float]] = None, tensorboard: bool = False,
        wandb: Union[None, str, dict] = None, profile_steps: Optional[Tuple[int, int]] = None) -> FitResult:
    """Train ``state`` with ``step_fn(state, batch) -> (state, metrics)`` for ``steps`` updates (``None``: all batches).

    * ``out_dir``: ``metrics.jsonl``, checkpoints (``out_dir/checkpoints``, every ``checkpoint_every`` steps and
      at the end, the last ``keep`` kept) under ``out_dir/run.lock``; ``resume``: continue from the newest intact
      checkpoint there (``state`` is then the layout template); without, existing checkpoints are an error.
    * ``eval_every``: ``evaluate(eval_step, state, eval_batches())`` every that many steps and at the end.
    * ``put_batch``: host batch -> device batch (e.g. ``partial(parallel.shard_batch, mesh=mesh)``).
    * ``time_left``: seconds left of a time budget whose batches stop when it is spent (the ETA; the stop is
      ``"time_budget"``).
    * ``tensorboard`` / ``wandb``: mirror the records to ``out_dir/tb`` / a W&B run; ``profile_steps=(10, 15)``: a
      ``jax.profiler`` trace of those steps in ``out_dir/profile``. A non-finite ``loss``/``grad_norm``, or one
      in the state about to be saved, evaluated or returned, stops training with a message naming it.
    Only process 0 prints and writes metrics; every process must call ``fit`` (checkpoints are collective)."""
    _check_args(steps, log_every, eval_every, checkpoint_every, eval_step, eval_batches)
    stream, main = sys.stdout if stream is None else stream, jax.process_index() == 0
    say = (lambda line: stream.write(line + "\n")) if main else (lambda line: None)
    with contextlib.ExitStack() as stack:
        ckpt, state, saved, notices = open_run(stack, out_dir, state, checkpoint_every=checkpoint_every, keep=keep,
                                               resume=resume, main=main, say=say)
        start = t = current_step(state)
        log = _open_log(stack, out_dir, start, notices, say, resume=resume, tensorboard=tensorboard, wandb=wandb,
                        main=main)
        es = (early_stopping or EarlyStopping())._replace(**{k: saved[k] for k in ("best", "bad_evals") if k in saved})
        at_eval, at_log, at_ckpt = (Every(n, steps) for n in (eval_every if eval_step is not None else None, log_every,
                                                              checkpoint_every if ckpt is not None else None))
        window, progress, reason, message = Window(), None, "done", ""
        guard = StepGuard(on_read=window.add)
        profiler = stack.enter_context(ProfileWindow(out_dir and f"{out_dir}/profile", profile_steps))
        for t, (batch, device_batch) in zip(_numbers(start, steps), window.batches(batches(start), put_batch)):
            progress = progress or Progress(steps, start, stream, tty, _rows(batch), time_left)
            profiler.before(t)
            state, metrics = step_fn(state, device_batch)
            window.dispatched(metrics)
            profiler.after(t, metrics)
            if t == start + 1:
                _first_step_done(metrics, window, progress, t)
            saving = at_eval(t) or at_ckpt(t)
            if (bad := guard.after_step(t, metrics, state, read=saving or at_log(t), whole=saving)) is not None:
                reason, message = "nonfinite", log.event(t, "nonfinite", _stopped(bad, ckpt))
                break
            _show(t, window, progress, step_fn, log, main, at_log(t))
            if at_eval(t) and (es := _evaluate_at(t, eval_step, state, eval_batches, put_batch, log,
                                                  progress if main else None, early_stopping, es)).stop \
                    and early_stopping is not None:
                reason, message = "early_stop", es.message(t)
            if ckpt is not None and (at_ckpt(t) or reason == "early_stop"):
                ckpt.save(t, state, es.counters())
            if reason == "early_stop":
                break
        if reason == "done" and (steps is None or t < steps):
            reason, message = _ran_out(t, time_left)
        return _finish(state, start, t, reason, message, guard=guard, ckpt=ckpt, log=log, es=es, window=window,
                       progress=progress, step_fn=step_fn, main=main)


def _finish(state, start: int, t: int, reason: str, message: str, *, guard: StepGuard, ckpt, log: MetricsLog,
            es: EarlyStopping, window: Window, progress: Optional[Progress], step_fn, main: bool) -> FitResult:
    """The end of a run: the last step's metrics and the whole state checked, the final checkpoint (or, after a
    non-finite value, the last good one restored), the last log window and the closing progress line."""
    if reason != "nonfinite":
        bad = guard.read() or (state_problem(state, t) if t > start else None)
        if bad is not None:
            reason, message = "nonfinite", log.event(t, "nonfinite", _stopped(bad, ckpt))
    if reason == "nonfinite":
        if ckpt is not None and ckpt.latest_step() is not None:
            ckpt.wait()
        state = ckpt.restore(state)[0] if ckpt is not None and ckpt.latest_step() is not None else None
    elif ckpt is not None and ckpt.latest_step() != t and t > start:
        ckpt.save(t, state, es.counters())
    if progress is not None and main:
        _log_window(t, window, progress, step_fn, log, main)
        progress.update(t if state is None else current_step(state), log.records[-1] if log.records else {},
                        force=True)
        if message:
            progress.message(message)
        elif progress.tty:
            progress.message("")
    return FitResult(state, start if state is None else current_step(state), reason, message, log.records, es.best)
