"""Training: the state pytree, compiled step builders, parallel layouts, populations, checkpoints, the loop.

A loss function ``loss_fn(params, model_state, batch, key, train) -> (loss, (new_model_state, metrics))`` and an
optax optimiser make every step. Index:

State
    init_state(model, spec, tx, seed)        a :class:`TrainState` (step, params, model_state, opt_state, key, ema)
    create_state(params, model_state, tx, key)   the same from parameters you built
Loss functions (the contract above)
    classifier_loss(model, x=, y=)           softmax cross-entropy; metrics loss, accuracy
    regression_loss(model, x=, y=, loss=)    MSE/MAE/Huber against ``batch[y]``; metrics loss, mse, mae
    reconstruction_loss(model, x=)           an autoencoder's output against its input
    prediction_loss(model, fn, x=)           any ``fn(prediction, batch) -> loss``
Steps
    train_step(loss_fn, tx, ...)             compiled ``(state, batch) -> (state, metrics)``, state donated
    eval_step(loss_fn)                       compiled ``(state, batch) -> metrics`` (train=False)
    make_update, make_eval                   the same, pure and not jitted (to vmap, shard, jit yourself)
    optimizer_update(tx, grads, opt_state, params)  one optax update applied: ``(params, opt_state)``
    per_example_grads(loss_fn)               ``(params, model_state, batch, key) -> (losses, grads, states)``
    DPSGD(clip_norm, noise_multiplier)       DP-SGD for ``train_step(..., dp=)``
    compile_fn(fn, ...)                      ``jax.jit`` with per-program XLA compiler options
Loop and checkpoints
    fit(step, state, batches, steps=, out_dir=, ...)  -> :class:`FitResult`; evaluate, EarlyStopping, Checkpointer
    predict(fn, x, batch_size), evaluate_split(fn, arrays, batch_size)   a whole split, exact with padding
    flip_averaged(logits_fn)                 left-right test-time augmentation
    classifier_eval(model, tta=)             a classifier's eval logits and per-example loss/accuracy
    TimeBudget, spent_before, warmup_cosine  a wall-clock training budget across resumes
    the loop's parts, for a loop of your own: MetricsLog, read_metrics, eval_summary (metrics.jsonl), Progress, Window (logged
    means), StepGuard, state_problem (non-finite checks), Every, ProfileWindow, open_run (resume), current_step
Populations (N models in one compiled step: seeds x hyperparameters)
    init_population, population_step, population_eval, member, set_hyperparams, unstack_members, stack_members

Submodules: ``state``, ``step``, ``objectives`` (loss builders), ``parallel`` (mesh, sharding, multi-process),
``sharding`` (logical-axis rules -> any mesh: data, fsdp, tensor), ``fit_report`` (will it fit: per-device bytes;
``fit_configs``: the experiment recipes' steps for it),
``population`` (N models in one step), ``checkpoint`` (orbax), ``damage`` (damaged checkpoints on resume), ``runlock`` (one run
per folder), ``predict`` (predictions and exact evaluation over a whole split), ``budget`` (a wall-clock
training budget), and ``loop`` (``fit``) with the parts it is composed of, each usable in a loop of your own:
``metrics_log`` (metrics.jsonl, TensorBoard, W&B), ``progress`` (the bar and log lines), ``window`` (the logged
means, throughput, data wait), ``guard`` (the non-finite checks), ``periodic`` (``Every``), ``early_stopping``,
``profiler`` (``ProfileWindow``), ``resume`` (``open_run``), ``mfu``, ``compile_options``.
"""
from deepcore.train.budget import TimeBudget, spent_before, warmup_cosine
from deepcore.train.checkpoint import Checkpointer
from deepcore.train.early_stopping import EarlyStopping
from deepcore.train.guard import StepGuard, state_problem
from deepcore.train.loop import FitResult, current_step, evaluate, fit
from deepcore.train.metrics_log import MetricsLog, eval_summary, read_metrics
from deepcore.train.periodic import Every
from deepcore.train.predict import classifier_eval, evaluate_split, flip_averaged, predict
from deepcore.train.profiler import ProfileWindow
from deepcore.train.progress import Progress
from deepcore.train.resume import open_run
from deepcore.train.state import TrainState, create_state, init_state
from deepcore.train.objectives import prediction_loss, reconstruction_loss, regression_loss
from deepcore.train.step import (DPSGD, classifier_loss, compile_fn, eval_step, make_eval, make_update,
                                 optimizer_update, per_example_grads, train_step)
from deepcore.train.window import Window
from deepcore.train.population import (init_population, member, population_eval, population_step, set_hyperparams,
                                       stack_members, unstack_members)

__all__ = [
    "TrainState", "init_state", "create_state",
    "classifier_loss", "regression_loss", "reconstruction_loss", "prediction_loss",
    "train_step", "eval_step", "make_update", "make_eval", "optimizer_update", "per_example_grads", "DPSGD", "compile_fn",
    "fit", "evaluate", "EarlyStopping", "FitResult", "Checkpointer",
    "predict", "evaluate_split", "flip_averaged", "classifier_eval", "TimeBudget", "spent_before", "warmup_cosine",
    "MetricsLog", "read_metrics", "eval_summary", "Progress", "Window", "StepGuard", "state_problem", "Every", "ProfileWindow",
    "open_run", "current_step",
    "init_population", "population_step", "population_eval", "member", "set_hyperparams", "unstack_members", "stack_members",
]
