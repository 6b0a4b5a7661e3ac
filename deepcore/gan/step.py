"""The GAN train state and one compiled step that updates the discriminator, then the generator.

``GANState(step, g_params, g_state, d_params, d_state, g_opt, d_opt, key, g_ema)`` is one pytree (checkpoint
it, resume it, hand it to :func:`deepcore.train.fit`). Step ``t`` draws its randomness from
``fold_in(key, t)`` only, so a resumed run is identical to an uninterrupted one.

One update on a batch ``{"image": (B, H, W, C), "label": (B,)}`` (labels only for a conditional pair):

1. D step: ``fake = G(z1)`` (G in train mode, gradient stopped); D minimises ``loss.d(D(real), D(fake))``
   ``+ penalty_weight * penalty(D, real, fake, key)``; D's state (spectral-norm vectors) is updated by the
   real-image call.
2. G step, against the *updated* D (in eval mode, D's state untouched): G minimises ``loss.g(D(G(z2)))``
   on a fresh ``z2``; G's state (batch-norm statistics) is updated by both of its calls.
3. ``g_ema`` follows G's params with decay ``min(ema_decay, (1 + t) / (10 + t))``.

Each network has its own optax optimiser; gradients of one never touch the other's params.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import optax

from deepcore.core import accum_dtype, cast
from deepcore.gan.losses import GANLoss, get_loss
from deepcore.gan.penalties import get_penalty
from deepcore.train.state import StateMethods
from deepcore.train.step import compile_fn, ema_update, optimizer_update


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GANState(StateMethods):
    step: jax.Array
    g_params: Any
    g_state: Any
    d_params: Any
    d_state: Any
    g_opt: Any
    d_opt: Any
    key: jax.Array
    g_ema: Any = None


def init_gan_state(generator, discriminator, g_spec, d_spec, g_tx: optax.GradientTransformation,
                   d_tx: optax.GradientTransformation, seed: int = 0, *, ema: bool = True) -> GANState:
    """Initialise both networks (``g_spec``/``d_spec``: their input specs, ``(z, labels)`` / ``(images, labels)``
    pairs for conditional models) and their optimisers; ``ema`` keeps an EMA copy of G's params."""
    k_g, k_d, k_train = jax.random.split(jax.random.PRNGKey(seed), 3)
    _, gp, gs = generator.init(k_g, g_spec)
    _, dp, ds = discriminator.init(k_d, d_spec)
    return GANState(step=jnp.zeros((), jnp.int32), g_params=gp, g_state=gs, d_params=dp, d_state=ds,
                    g_opt=g_tx.init(gp), d_opt=d_tx.init(dp), key=jax.random.key_data(k_train),
                    g_ema=jax.tree.map(jnp.array, gp) if ema else None)


def to_unit_range(images):
    """uint8 images ``[0, 255]`` -> float32 ``[-1, 1]`` (the generator's tanh range); floats pass unchanged."""
    images = jnp.asarray(images)
    if jnp.issubdtype(images.dtype, jnp.integer):
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images


def generate_images(generator, params, state, z, labels=None):
    """Images from ``z (B, z_dim)`` (and ``labels (B,)`` for a conditional G), G's batch norm using the
    statistics of this batch (train mode; the returned state is dropped), so it also suits EMA params."""
    x = z if labels is None else (z, labels)
    return generator.apply(params, state, x, train=True)[0]


def make_gan_update(generator, discriminator, g_tx: optax.GradientTransformation,
                    d_tx: optax.GradientTransformation, *, z_dim: int,
                    loss: Union[GANLoss, str] = "nonsaturating", penalty: Union[Callable, str, None] = None,
                    penalty_weight: float = 10.0, num_classes: Optional[int] = None,
                    ema_decay: Optional[float] = 0.999, compute_dtype=None, image_key: str = "image",
                    label_key: str = "label", part: str = "both"):
    """The pure update ``(GANState, batch) -> (GANState, metrics)`` (see the module docstring).

    ``loss``: a :class:`deepcore.gan.losses.GANLoss` (``losses.nonsaturating``, ``losses.hinge``,
    ``losses.wasserstein`` or your own pair) or its name. ``penalty``: ``None``, a callable
    ``(d_fn, real, fake, key) -> scalar`` or a name of :data:`deepcore.gan.penalties.PENALTIES` (``"r1"`` on
    real images, ``"wgan-gp"`` on real/fake interpolates), added to D's loss times ``penalty_weight``.
    ``num_classes``: conditional models; real labels come from ``batch[label_key]``, fake labels are uniform.
    ``compute_dtype`` (e.g. ``jnp.bfloat16``): params and images are cast for the passes; params, gradients
    and optimiser states stay float32.
    Metrics: ``d_loss``, ``g_loss``, ``d_real``/``d_fake`` (mean logits), ``penalty``, ``grad_norm`` (global
    norm of both gradients together; non-finite when either loss is).
    ``part``: ``"both"`` (the step), or only ``"d"`` or ``"g"`` (for tests and custom D:G schedules; the
    step counter advances either way).
    """
    if part not in ("both", "d", "g"):
        raise ValueError(f"part must be 'both', 'd' or 'g', got {part!r}")
    nets = _Nets(generator, discriminator, get_loss(loss), get_penalty(penalty), penalty_weight, num_classes,
                 z_dim, compute_dtype, image_key, label_key)   # unknown loss/penalty names fail here, not under jit

    def update(state: GANState, batch):
        d_norm = g_norm = jnp.zeros((), jnp.float32)
        metrics = {}
        if part in ("both", "d"):
            state, m, d_norm = _d_part(nets, d_tx, state, batch)
            metrics.update(m)
        if part in ("both", "g"):
            state, m, g_norm = _g_part(nets, g_tx, ema_decay, state, batch)
            metrics.update(m)
        metrics["grad_norm"] = jnp.sqrt(d_norm ** 2 + g_norm ** 2)
        return state.replace(step=state.step + 1), metrics

    return update


@dataclasses.dataclass(frozen=True)
class _Nets:
    """The two networks as the update calls them (params cast to the compute dtype, D's logits accumulated in
    float32 or wider) and the update's settings."""
    generator: Any
    discriminator: Any
    loss: GANLoss
    penalty: Optional[Callable]
    penalty_weight: float
    num_classes: Optional[int]
    z_dim: int
    cdt: Any
    image_key: str
    label_key: str

    def c(self, tree):
        return tree if self.cdt is None else cast(tree, self.cdt)

    def G(self, params, state, z, labels):
        return self.generator.apply(self.c(params), state, z if labels is None else (z, labels), train=True)

    def D(self, params, state, x, labels, train):
        logits, s = self.discriminator.apply(self.c(params), state, x if labels is None else (x, labels), train=train)
        return logits.astype(accum_dtype(logits.dtype)), s

    def keys_and_labels(self, state, batch):
        """``(B, (k_z1, k_z2, k_pen), (fake labels of the D step, of the G step))`` from the step's key."""
        b, n = batch[self.image_key].shape[0], self.num_classes
        k_z1, k_z2, k_y1, k_y2, k_pen = jax.random.split(state.step_key(), 5)
        ys = [jax.random.randint(k, (b,), 0, n) if n is not None else None for k in (k_y1, k_y2)]
        return b, (k_z1, k_z2, k_pen), ys


def _d_part(nets: _Nets, d_tx, state: GANState, batch):
    """D's update against G's (gradient-stopped) fakes: ``(state, metrics, D's gradient norm)``."""
    real = nets.c(to_unit_range(batch[nets.image_key]))
    b, (k_z1, _, k_pen), (fake_y, _) = nets.keys_and_labels(state, batch)
    real_y = batch[nets.label_key] if nets.num_classes is not None else None
    z = jax.random.normal(k_z1, (b, nets.z_dim), real.dtype)
    fake, g_state = nets.G(state.g_params, state.g_state, z, fake_y)
    fake = jax.lax.stop_gradient(fake)

    def d_objective(dp):
        r, d_state = nets.D(dp, state.d_state, real, real_y, True)
        f, _ = nets.D(dp, state.d_state, fake, fake_y, True)
        total = nets.loss.d(r, f)
        pen = jnp.zeros((), total.dtype)
        if nets.penalty is not None:
            d_fn = lambda x: nets.D(dp, state.d_state, x, real_y, True)[0]  # noqa: E731
            pen = nets.penalty(d_fn, real, fake, k_pen).astype(total.dtype)
            total = total + nets.penalty_weight * pen
        return total, (d_state, jnp.mean(r), jnp.mean(f), pen)

    (dl, (d_state, d_real, d_fake, pen)), grads = jax.value_and_grad(d_objective, has_aux=True)(state.d_params)
    d_params, d_opt = optimizer_update(d_tx, grads, state.d_opt, state.d_params)
    new = state.replace(d_params=d_params, d_state=d_state, d_opt=d_opt, g_state=g_state)
    return new, {"d_loss": dl, "d_real": d_real, "d_fake": d_fake, "penalty": pen}, optax.tree.norm(grads)


def _g_part(nets: _Nets, g_tx, ema_decay, state: GANState, batch):
    """G's update against the current D (eval mode) and G's EMA: ``(state, metrics, G's gradient norm)``."""
    b, (_, k_z2, _), (_, fake_y) = nets.keys_and_labels(state, batch)
    z = jax.random.normal(k_z2, (b, nets.z_dim), jnp.float32 if nets.cdt is None else nets.cdt)

    def g_objective(gp):
        x, gs = nets.G(gp, state.g_state, z, fake_y)
        logits, _ = nets.D(state.d_params, state.d_state, x, fake_y, False)
        return nets.loss.g(logits), gs

    (gl, g_state), grads = jax.value_and_grad(g_objective, has_aux=True)(state.g_params)
    g_params, g_opt = optimizer_update(g_tx, grads, state.g_opt, state.g_params)
    ema = state.g_ema
    if ema_decay is not None and ema is not None:
        ema = ema_update(g_params, ema, ema_decay, state.step)
    new = state.replace(g_params=g_params, g_state=g_state, g_opt=g_opt, g_ema=ema)
    return new, {"g_loss": gl}, optax.tree.norm(grads)

def gan_train_step(generator, discriminator, g_tx, d_tx, *, donate: bool = True,
                   compiler_options: Optional[dict] = None, **kwargs):
    """:func:`make_gan_update` jit-compiled (state donated; optional per-function XLA ``compiler_options``)."""
    update = make_gan_update(generator, discriminator, g_tx, d_tx, **kwargs)
    return compile_fn(update, donate_argnums=(0,) if donate else (), compiler_options=compiler_options)
