"""Training: the state pytree, compiled step builders, parallel layouts, populations, checkpoints, the loop.

Submodules: ``state``, ``step``, ``parallel`` (mesh, sharding, multi-process), ``population`` (vmapped
training of N models), ``checkpoint`` (orbax), ``damage`` (damaged checkpoints on resume), ``runlock`` (one run
per folder), ``predict`` (predictions and exact evaluation over a whole split), and ``loop`` (``fit``) with the
parts it is composed of, each usable in a loop of your own:
``metrics_log`` (metrics.jsonl, TensorBoard, W&B), ``progress`` (the bar and log lines), ``window`` (the logged
means, throughput, data wait), ``guard`` (the non-finite checks), ``periodic`` (``Every``), ``early_stopping``,
``profiler`` (``ProfileWindow``), ``resume`` (``open_run``); ``budget`` (a wall-clock training budget
across resumes).
"""
from deepcore.train.budget import TimeBudget, spent_before, warmup_cosine
from deepcore.train.checkpoint import Checkpointer
from deepcore.train.early_stopping import EarlyStopping
from deepcore.train.guard import StepGuard, state_problem
from deepcore.train.loop import FitResult, current_step, evaluate, fit
from deepcore.train.metrics_log import MetricsLog, read_metrics
from deepcore.train.periodic import Every
from deepcore.train.predict import evaluate_split, flip_averaged, predict
from deepcore.train.profiler import ProfileWindow
from deepcore.train.progress import Progress
from deepcore.train.resume import open_run
from deepcore.train.state import TrainState, create_state, init_state
from deepcore.train.step import (DPSGD, classifier_loss, compile_fn, eval_step, make_eval, make_update,
                                 per_example_grads, train_step)
from deepcore.train.window import Window
