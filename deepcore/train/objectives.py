"""Loss-function builders beside :func:`deepcore.train.step.classifier_loss`: regression, reconstruction, any.

Each returns a function of the training engine's loss-function contract::

    loss_fn(params, model_state, batch, key, train) -> (loss, (new_model_state, metrics))

``batch`` a dict of arrays with the batch on axis 0; ``loss`` a float scalar (the mean over the batch);
``metrics`` a dict of scalars (``loss`` included). ``train_step``, ``eval_step``, ``fit``, populations and
``per_example_grads`` take any such function.

    loss = regression_loss(model, x="window", y="target")            # MSE; metrics loss, mse, mae
    loss = reconstruction_loss(autoencoder, x="image")                # the input is the target
    loss = prediction_loss(model, lambda pred, batch: my_loss(pred, batch["y"]), x="x")
"""
from __future__ import annotations

from typing import Callable, Optional

import jax.numpy as jnp

from deepcore import losses

ERRORS = {"mse": losses.mse, "mae": losses.mae, "huber": losses.huber}


def prediction_loss(model, fn: Callable, *, x: str = "x") -> Callable:
    """A loss function from ``fn(prediction, batch) -> loss`` (a float scalar) or ``-> (loss, metrics dict)``.

    ``prediction`` is ``model.apply(params, state, batch[x], key=key, train=train)[0]``; ``model`` is a
    :class:`deepcore.core.Layer` or its ``apply``. Metrics: ``loss`` plus whatever ``fn`` returns.
    """
    apply = getattr(model, "apply", model)

    def loss_fn(params, model_state, batch, key, train):
        pred, new_state = apply(params, model_state, batch[x], key=key, train=train)
        out = fn(pred, batch)
        loss, extra = out if isinstance(out, tuple) else (out, {})
        loss = jnp.asarray(loss)
        if loss.shape != ():
            raise ValueError(f"prediction_loss: expected fn(prediction, batch) to return a scalar loss, "
                             f"got shape {tuple(loss.shape)}")
        return loss, (new_state, dict(extra, loss=loss))

    return loss_fn


def _error_loss(name: str, model, x: str, target: Callable, loss: str, mask: Optional[str], delta: float):
    if loss not in ERRORS:
        raise ValueError(f"{name}: loss: expected one of {tuple(ERRORS)}, got {loss!r}")

    def fn(pred, batch):
        t = target(batch)
        if tuple(pred.shape) != tuple(jnp.shape(t)):
            raise ValueError(f"{name}: expected predictions of the target's shape {tuple(jnp.shape(t))}, "
                             f"got {tuple(pred.shape)}")
        m = None if mask is None else batch[mask]
        kw = {"delta": delta} if loss == "huber" else {}
        value = ERRORS[loss](pred, t, mask=m, **kw)
        return value, {"mse": losses.mse(pred, t, mask=m), "mae": losses.mae(pred, t, mask=m)}

    return prediction_loss(model, fn, x=x)


def regression_loss(model, *, x: str = "x", y: str = "y", loss: str = "mse", mask: Optional[str] = None,
                    delta: float = 1.0) -> Callable:
    """Mean error of ``model(batch[x])`` against ``batch[y]`` (the same shape, e.g. ``(B,)`` or ``(B, D)``).

    ``loss``: ``"mse"``, ``"mae"`` or ``"huber"`` (with ``delta``); ``mask``: the batch key of a bool mask with
    the targets' leading dims (e.g. ``(B,)`` real rows of a padded batch). Metrics: ``loss``, ``mse``, ``mae``.
    """
    return _error_loss("regression_loss", model, x, lambda b: b[y], loss, mask, delta)


def reconstruction_loss(model, *, x: str = "x", loss: str = "mse", mask: Optional[str] = None,
                        delta: float = 1.0) -> Callable:
    """Mean error of an autoencoder's ``model(batch[x])`` against ``batch[x]`` itself, in float32.

    Integer inputs (uint8 images) are compared as given; scale them in the model (``layers.Lambda``) or the
    data pipeline. ``loss``, ``mask`` as for :func:`regression_loss`. Metrics: ``loss``, ``mse``, ``mae``.
    """
    return _error_loss("reconstruction_loss", model, x, lambda b: b[x], loss, mask, delta)
