"""Ensembles by vmap: the members of a population (``deepcore.train.population``) predict together.

::

    states = init_population(init_fn, tx, seeds=range(5))       # K members, one compiled step trains all
    ...train with population_step...
    probs = member_probs(model, states, x)                       # (K, B, C)
    report = ensemble_report(probs, labels, num_classes=10)      # ensemble vs members: accuracy, ECE, NLL
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from deepcore.interpret.calibration import classifier_report


@functools.partial(jax.jit, static_argnames=("model", "use_ema"))
def member_logits(model, states, x, *, use_ema: bool = False) -> jax.Array:
    """``(K, B, C)`` eval-mode logits of every member of the stacked ``states`` (a leading member axis).

    ``model``: a deepcore ``Layer`` (or an ``apply`` function), static under ``jit``."""
    apply = getattr(model, "apply", model)

    def one(params, model_state):
        return apply(params, model_state, x, key=None, train=False)[0]

    params = states.ema if use_ema else states.params
    return jax.vmap(one)(params, states.model_state)


def member_probs(model, states, x, *, use_ema: bool = False) -> jax.Array:
    """``(K, B, C)`` softmax probabilities of every member (float32)."""
    return jax.nn.softmax(member_logits(model, states, x, use_ema=use_ema).astype(jnp.float32), axis=-1)


def ensemble_probs(probs) -> jax.Array:
    """``(K, B, C) -> (B, C)``: the ensemble's prediction, the mean of the members' probabilities."""
    return jnp.mean(jnp.asarray(probs), axis=0)


def ensemble_report(probs, labels, num_classes: int, num_bins: int = 15) -> dict:
    """The ensemble against its members: ``ensemble`` and ``members`` (one :func:`classifier_report` each, without
    the confusion matrices), ``member_mean`` (mean of the members' accuracy, ece, mce and nll_nats) and
    ``gain`` (ensemble minus member mean)."""
    probs = jnp.asarray(probs)
    strip = lambda r: {k: v for k, v in r.items() if k != "confusion_matrix"}
    ens = strip(classifier_report(ensemble_probs(probs), labels, num_classes, num_bins))
    members = [strip(classifier_report(p, labels, num_classes, num_bins)) for p in probs]
    keys = ("accuracy", "ece", "mce", "nll_nats")
    mean = {k: float(np.mean([m[k] for m in members])) for k in keys}
    return {"ensemble": ens, "members": members, "member_mean": mean,
            "gain": {k: ens[k] - mean[k] for k in keys}}
