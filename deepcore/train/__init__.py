"""Training: the state pytree, compiled step builders, parallel layouts, populations, checkpoints, the loop.

Submodules: ``state``, ``step``, ``parallel`` (mesh, sharding, multi-process), ``population`` (vmapped
training of N models), ``checkpoint`` (orbax), ``loop`` (``fit``), ``progress`` (its output), ``guard``
(the whole-state non-finite check), ``damage`` (damaged checkpoints on resume), ``runlock`` (one run per folder).
"""
from deepcore.train.checkpoint import Checkpointer
from deepcore.train.loop import EarlyStopping, FitResult, evaluate, fit
from deepcore.train.state import TrainState, create_state, init_state
from deepcore.train.objectives import prediction_loss, reconstruction_loss, regression_loss
from deepcore.train.step import (DPSGD, classifier_loss, compile_fn, eval_step, make_eval, make_update,
                                 per_example_grads, train_step)
