"""Train and eval step builders: a loss function and an optax optimiser -> a compiled step.

The loss-function contract::

    loss_fn(params, model_state, batch, key, train) -> (loss, (new_model_state, metrics))

``batch`` is a dict of arrays with the batch on axis 0, ``loss`` a float scalar (a mean over the
batch), ``metrics`` a dict of scalars. :func:`classifier_loss` builds one from a deepcore model.

``make_update`` returns the pure update ``(state, batch) -> (state, metrics)``; ``train_step`` jits
it with the state donated (and, optionally, shardings and per-function XLA compiler options).
The same pure update is vmapped by ``population`` and sharded by ``parallel``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepcore import losses, metrics
from deepcore.core import cast, implicit_promotion
from deepcore.train import compile_options
from deepcore.train.state import TrainState

LossFn = Callable[..., tuple]
EVAL_KEY_SALT = 0x7FFFFFFF  # eval key = fold_in(state.key, EVAL_KEY_SALT), never a training step key


class DPSGD(NamedTuple):
    """DP-SGD: clip each example's gradient to global L2 norm ``clip_norm``, sum, add
    ``N(0, (noise_multiplier * clip_norm)^2)`` noise, divide by the batch size. Each example runs as a
    batch of one; a stateful model's new state is the mean of the per-example states."""

    clip_norm: float
    noise_multiplier: float = 0.0


def classifier_loss(model, *, x: str = "x", y: str = "y", label_smoothing: float = 0.0) -> LossFn:
    """Softmax cross-entropy for a model with ``apply(params, state, batch[x]) -> (logits (B, ..., C), state)``
    and integer labels ``batch[y]: (B, ...)`` (mean over every position). Metrics: ``loss`` (nats),
    ``accuracy``. The loss is computed in at least float32 (so bfloat16 compute keeps an accurate loss)."""
    apply = getattr(model, "apply", model)

    def loss_fn(params, model_state, batch, key, train):
        logits, new_state = apply(params, model_state, batch[x], key=key, train=train)
        loss = losses.softmax_cross_entropy(logits, batch[y], label_smoothing=label_smoothing)
        return loss, (new_state, {"loss": loss, "accuracy": metrics.accuracy(logits, batch[y])})

    return loss_fn


def _cast_floats(tree, dtype):
    return tree if dtype is None else cast(tree, dtype)


def _value_and_grad(loss_fn, compute_dtype):
    """``(params, model_state, batch, key) -> ((loss, (state, metrics)), grads)``; grads in the params' dtype."""

    def f(params, model_state, batch, key):
        return loss_fn(_cast_floats(params, compute_dtype), model_state, _cast_floats(batch, compute_dtype), key, True)

    return jax.value_and_grad(f, has_aux=True)


def per_example_grads(loss_fn: LossFn, *, compute_dtype=None) -> Callable:
    """``(params, model_state, batch, key) -> (losses (B,), grads with a leading B axis, model_states (B, ...))``.

    Each example is run as a batch of one (``jax.vmap`` over the batch axis) in **train mode**
    (``loss_fn(..., train=True)``, as the gradients of a training step), example ``i`` with key
    ``split(key, B)[i]``; ``key=None`` gives every example ``None`` (fine for a model without dropout).
    """
    vg = _value_and_grad(loss_fn, compute_dtype)

    def one(params, model_state, example, key):
        (loss, (ms, _)), g = vg(params, model_state, jax.tree.map(lambda a: a[None], example), key)
        return loss, g, ms

    def grads(params, model_state, batch, key):
        if key is None:
            return jax.vmap(lambda ex: one(params, model_state, ex, None))(batch)
        n = jax.tree.leaves(batch)[0].shape[0]
        keys = jax.random.split(key, n)
        return jax.vmap(one, in_axes=(None, None, 0, 0))(params, model_state, batch, keys)

    return grads


def _dp_grads(loss_fn, dp: DPSGD, compute_dtype):
    pe = per_example_grads(loss_fn, compute_dtype=compute_dtype)

    def grads(params, model_state, batch, key):
        k_ex, k_noise = jax.random.split(key)
        losses, g, states = pe(params, model_state, batch, k_ex)
        leaves, treedef = jax.tree.flatten(g)
        n = losses.shape[0]
        summed, num_clipped = optax.per_example_global_norm_clip(leaves, dp.clip_norm)
        if dp.noise_multiplier:  # one draw for all leaves (one RNG kernel compiles much faster than one per leaf)
            sizes = [s.size for s in summed]
            z = jax.random.normal(k_noise, (sum(sizes),), jnp.float32) * (dp.noise_multiplier * dp.clip_norm)
            parts = jnp.split(z, np.cumsum(sizes)[:-1])
            summed = [s + p.reshape(s.shape).astype(s.dtype) for s, p in zip(summed, parts)]
        noisy = [s / n for s in summed]
        loss = losses.mean()
        metrics = {"loss": loss, "clipped_fraction": num_clipped / n}
        return loss, jax.tree.map(lambda a: a.mean(0), states), metrics, jax.tree.unflatten(treedef, noisy)

    return grads


def _plain_grads(loss_fn, compute_dtype):
    vg = _value_and_grad(loss_fn, compute_dtype)

    def grads(params, model_state, batch, key):
        (loss, (ms, metrics)), g = vg(params, model_state, batch, key)
        return loss, ms, metrics, g

    return grads


def _accumulate(grads_fn, accum_steps: int):
    """Mean gradient over ``accum_steps`` equal micro-batches (strided rows), run one after another with
    ``lax.scan``."""

    def grads(params, model_state, batch, key):
        def split(a):
            if a.shape[0] % accum_steps:
                raise ValueError(f"batch size {a.shape[0]} is not divisible by accum_steps={accum_steps}")
            # micro-batch i = rows i, i + k, i + 2k, ...: a batch sharded over devices stays put
            return a.reshape((a.shape[0] // accum_steps, accum_steps) + a.shape[1:]).swapaxes(0, 1)

        micro = jax.tree.map(split, batch)

        def body(carry, xs):
            ms, gsum = carry
            i, mb = xs
            loss, ms, metrics, g = grads_fn(params, ms, mb, jax.random.fold_in(key, i))
            return (ms, jax.tree.map(jnp.add, gsum, g)), (loss, metrics)

        zeros = jax.tree.map(jnp.zeros_like, params)
        (ms, gsum), (losses, metrics) = jax.lax.scan(body, (model_state, zeros), (jnp.arange(accum_steps), micro))
        mean = lambda t: jax.tree.map(lambda a: a.mean(0), t)
        return losses.mean(), ms, mean(metrics), jax.tree.map(lambda a: a / accum_steps, gsum)

    return grads


def optimizer_update(tx: optax.GradientTransformation, grads, opt_state, params) -> tuple:
    """``(new params, new opt_state)``: one ``tx`` update applied to ``params`` (optax's internals promote dtypes
    implicitly, so the update runs in ``implicit_promotion()``)."""
    with implicit_promotion():
        updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def ema_update(new, ema, decay: float, step):
    """One step of an exponential moving average of ``new`` with the usual warm-up: the decay at update ``step``
    (0-based) is ``min(decay, (1 + step) / (10 + step))``, so early averages are not dominated by the
    initial weights (with a fixed 0.999, 800 steps in, 45% of the average would still be the initialisation)."""
    t = jnp.asarray(step, jnp.float32)
    return optax.incremental_update(new, ema, 1.0 - jnp.minimum(decay, (1.0 + t) / (10.0 + t)))


def make_update(loss_fn: LossFn, tx: optax.GradientTransformation, *, accum_steps: int = 1,
                compute_dtype=None, dp: Optional[DPSGD] = None, ema_decay: Optional[float] = None,
                grad_norm: bool = True) -> Callable:
    """The pure update ``(state, batch) -> (state, metrics)`` (not jitted; vmap, shard or jit it).

    * ``accum_steps``: split the batch into that many micro-batches and average their gradients (``lax.scan``).
    * ``compute_dtype``: e.g. ``jnp.bfloat16``: params and floating batch entries are cast for the forward and
      backward pass; gradients, parameters and optimiser state stay in the parameters' dtype (float32).
    * ``dp``: a :class:`DPSGD` for per-example clipping plus Gaussian noise.
    * ``ema_decay``: update ``state.ema`` (create the state with ``ema=True``) by :func:`ema_update`: decay
      ``min(ema_decay, (1 + step) / (10 + step))``.

    Metrics hold ``loss`` and, unless ``grad_norm=False``, ``grad_norm`` (global L2 norm of the gradient
    before the optimiser; the loop's check for non-finite gradients reads it). Without it a NaN gradient
    is still caught: ``fit`` checks the whole new state before every checkpoint, evaluation and return
    (:mod:`deepcore.train.guard`), and the next step's loss is NaN.
    """
    grads_fn = _dp_grads(loss_fn, dp, compute_dtype) if dp is not None else _plain_grads(loss_fn, compute_dtype)
    if accum_steps > 1:
        grads_fn = _accumulate(grads_fn, accum_steps)

    def update(state: TrainState, batch) -> tuple:
        loss, model_state, metrics, grads = grads_fn(state.params, state.model_state, batch, state.step_key())
        params, opt_state = optimizer_update(tx, grads, state.opt_state, state.params)
        ema = state.ema
        if ema_decay is not None:
            if ema is None:
                raise ValueError("ema_decay needs a state created with ema=True")
            ema = ema_update(params, ema, ema_decay, state.step)
        metrics = dict(metrics, loss=loss)
        if grad_norm:
            metrics["grad_norm"] = optax.tree.norm(grads)
        return state.replace(step=state.step + 1, params=params, model_state=model_state,
                             opt_state=opt_state, ema=ema), metrics

    return update


def make_eval(loss_fn: LossFn, *, compute_dtype=None, use_ema: bool = False) -> Callable:
    """The pure eval ``(state, batch) -> metrics`` (``train=False``; EMA params when ``use_ema``)."""

    def evaluate(state: TrainState, batch) -> dict:
        params = state.ema if use_ema else state.params
        key = jax.random.fold_in(state.key, EVAL_KEY_SALT)
        loss, (_, metrics) = loss_fn(_cast_floats(params, compute_dtype), state.model_state,
                                     _cast_floats(batch, compute_dtype), key, False)
        return dict(metrics, loss=loss)

    return evaluate


def compile_fn(fn: Callable, *, donate_argnums=(), in_shardings=None, out_shardings=None,
               compiler_options: Optional[dict] = None) -> Callable:
    """``jax.jit(fn)``; with ``compiler_options`` (e.g. ``{"xla_cpu_experimental_ynn_fusion_type":
    "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"}``) each input
    signature is compiled with those options for this function only (``jax.jit(..., compiler_options=)``);
    ``None``: the options :mod:`deepcore.train.compile_options` chooses per program (recorded in
    ``.choices``); ``{}``: none."""
    kw = {}
    if in_shardings is not None:
        kw["in_shardings"] = in_shardings
    if out_shardings is not None:
        kw["out_shardings"] = out_shardings
    if compiler_options is None:
        return compile_options.auto(jax.jit(fn, donate_argnums=donate_argnums, **kw))
    return jax.jit(fn, donate_argnums=donate_argnums, compiler_options=compiler_options or None, **kw)


def _replicated_like(batch_sharding):
    from jax.sharding import NamedSharding, PartitionSpec
    leaf = jax.tree.leaves(batch_sharding, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding))[0]
    return NamedSharding(leaf.mesh, PartitionSpec())


def train_step(loss_fn: LossFn, tx: optax.GradientTransformation, *, donate: bool = True,
               compiler_options: Optional[dict] = None, state_sharding=None, batch_sharding=None,
               **update_kwargs) -> Callable:
    """A compiled ``step(state, batch) -> (state, metrics)``; the input state is donated by default.

    ``update_kwargs`` go to :func:`make_update` (``accum_steps``, ``compute_dtype``, ``dp``, ``ema_decay``).
    ``state_sharding``/``batch_sharding`` (from :mod:`deepcore.train.parallel`) pin the layouts for
    data-parallel or fully-sharded training; the step code is the same.
    """
    update = make_update(loss_fn, tx, **update_kwargs)
    ins = outs = None
    if state_sharding is not None or batch_sharding is not None:
        ins = (state_sharding, batch_sharding)
        outs = (state_sharding, _replicated_like(batch_sharding)) if batch_sharding is not None else None
    return compile_fn(update, donate_argnums=(0,) if donate else (), in_shardings=ins, out_shardings=outs,
                      compiler_options=compiler_options)


def eval_step(loss_fn: LossFn, *, compute_dtype=None, use_ema: bool = False, compiler_options: Optional[dict] = None,
              state_sharding=None, batch_sharding=None) -> Callable:
    """A compiled ``evaluate(state, batch) -> metrics`` (nothing donated)."""
    ev = make_eval(loss_fn, compute_dtype=compute_dtype, use_ema=use_ema)
    ins = outs = None
    if state_sharding is not None or batch_sharding is not None:
        ins = (state_sharding, batch_sharding)
        outs = _replicated_like(batch_sharding) if batch_sharding is not None else None
    return compile_fn(ev, in_shardings=ins, out_shardings=outs, compiler_options=compiler_options)
