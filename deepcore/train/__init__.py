"""Training: the state pytree, compiled step builders, parallel layouts, populations, checkpoints, the loop."""
from deepcore.train.state import TrainState, create_state, init_state
from deepcore.train.step import (DPSGD, classifier_loss, compile_fn, eval_step, make_eval, make_update,
                                 per_example_grads, train_step)
