"""Flax linen: ``nn.Module``s, ``jax.jit`` step over ``(params, opt_state)`` (donated), ``optax.adam``.
Under bfloat16 the modules compute in ``dtype`` with float32 params (linen's own mixed-precision knobs)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bench.workloads import ADAM, GAN_ADAM, inputs
from bench.workloads.pure_jax import sync  # noqa: F401  (same sync for every JAX implementation)


class MLP(nn.Module):
    sizes: tuple
    dtype: object

    @nn.compact
    def __call__(self, x):
        for i, s in enumerate(self.sizes[1:]):
            x = nn.Dense(s, dtype=self.dtype)(x)
            x = nn.relu(x) if i < len(self.sizes) - 2 else x
        return x


class CNN(nn.Module):
    channels: tuple
    classes: int
    dtype: object

    @nn.compact
    def __call__(self, x):
        c1, c2, c3 = self.channels
        x = nn.relu(nn.Conv(c1, (3, 3), dtype=self.dtype)(x))
        x = nn.max_pool(nn.relu(nn.Conv(c2, (3, 3), dtype=self.dtype)(x)), (2, 2), (2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(c3, (3, 3), dtype=self.dtype)(x)), (2, 2), (2, 2))
        return nn.Dense(self.classes, dtype=self.dtype)(x.mean(axis=(1, 2)))


class CharLSTM(nn.Module):
    vocab: int
    embed: int
    hidden: int
    dtype: object

    @nn.compact
    def __call__(self, ids):
        x = nn.Embed(self.vocab, self.embed, dtype=self.dtype)(ids)
        x = nn.RNN(nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype))(x)
        return nn.Dense(self.vocab, dtype=self.dtype)(x)


class Block(nn.Module):
    d: int
    heads: int
    dtype: object

    @nn.compact
    def __call__(self, x, mask):
        h = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)(x)
        x = x + nn.MultiHeadDotProductAttention(self.heads, dtype=self.dtype)(h, h, mask=mask)
        h = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)(x)
        h = nn.Dense(self.d, dtype=self.dtype)(nn.gelu(nn.Dense(4 * self.d, dtype=self.dtype)(h), approximate=True))
        return x + h


class GPT(nn.Module):
    vocab: int
    d: int
    heads: int
    layers: int
    T: int
    dtype: object

    @nn.compact
    def __call__(self, ids):
        init = nn.initializers.normal(0.02)
        x = nn.Embed(self.vocab, self.d, embedding_init=init, dtype=self.dtype)(ids)
        x = x + self.param("pos", init, (self.T, self.d))[: ids.shape[1]].astype(self.dtype)
        mask = nn.make_causal_mask(ids)
        for _ in range(self.layers):
            x = Block(self.d, self.heads, self.dtype)(x, mask)
        x = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)(x)
        return nn.Dense(self.vocab, use_bias=False, dtype=self.dtype)(x)


class Generator(nn.Module):
    channels: tuple
    base: int
    dtype: object

    @nn.compact
    def __call__(self, z):
        c1, c2 = self.channels
        x = nn.relu(nn.Dense(self.base * self.base * c1, dtype=self.dtype)(z)).reshape(z.shape[0], self.base, self.base, c1)
        x = nn.relu(nn.ConvTranspose(c2, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(x))
        return jnp.tanh(nn.ConvTranspose(1, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(x))


class Discriminator(nn.Module):
    channels: tuple
    dtype: object

    @nn.compact
    def __call__(self, x):
        for c in self.channels:
            x = nn.leaky_relu(nn.Conv(c, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(x), 0.2)
        return nn.Dense(1, dtype=self.dtype)(x.reshape(x.shape[0], -1))[:, 0].astype(jnp.float32)


def module(workload, c, dtype):
    if workload == "W1":
        return MLP(tuple(c["sizes"]), dtype)
    if workload == "W2":
        return CNN(tuple(c["channels"]), c["classes"], dtype)
    if workload == "W3":
        return CharLSTM(c["vocab"], c["embed"], c["hidden"], dtype)
    return GPT(c["vocab"], c["d"], c["heads"], c["layers"], c["T"], dtype)


def build(workload, cfg, dtype="float32"):
    dtype = jnp.dtype(dtype)
    batch = {k: jnp.asarray(v) for k, v in inputs(workload, cfg).items()}
    key = jax.random.PRNGKey(0)
    if workload == "W5":
        return _gan(cfg, dtype, batch, key)
    net, tx = module(workload, cfg, dtype), optax.adam(**ADAM)
    params = net.init(key, batch["x"])

    def step(state, batch):
        params, opt_state = state

        def loss_fn(p):
            logits = net.apply(p, batch["x"]).astype(jnp.float32)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return jax.jit(step, donate_argnums=0), (params, tx.init(params)), batch


def _gan(c, dtype, batch, key):
    G, D = Generator(tuple(c["g_channels"]), c["hw"] // 4, dtype), Discriminator(tuple(c["d_channels"]), dtype)
    tx, b = optax.adam(**GAN_ADAM), batch["image"].shape[0]
    kg, kd, kz = jax.random.split(key, 3)
    gp, dp = G.init(kg, jnp.zeros((b, c["z"]))), D.init(kd, batch["image"])

    def step(state, batch):
        gp, dp, g_opt, d_opt, key = state
        key, k1, k2 = jax.random.split(key, 3)
        real = batch["image"].astype(dtype)
        fake = jax.lax.stop_gradient(G.apply(gp, jax.random.normal(k1, (b, c["z"]), dtype)))

        def d_loss(dp):
            return jnp.mean(jax.nn.softplus(-D.apply(dp, real))) + jnp.mean(jax.nn.softplus(D.apply(dp, fake)))

        dl, grads = jax.value_and_grad(d_loss)(dp)
        updates, d_opt = tx.update(grads, d_opt, dp)
        dp = optax.apply_updates(dp, updates)

        def g_loss(gp):
            return jnp.mean(jax.nn.softplus(-D.apply(dp, G.apply(gp, jax.random.normal(k2, (b, c["z"]), dtype)))))

        gl, grads = jax.value_and_grad(g_loss)(gp)
        updates, g_opt = tx.update(grads, g_opt, gp)
        return (optax.apply_updates(gp, updates), dp, g_opt, d_opt, key), dl + gl

    return jax.jit(step, donate_argnums=0), (gp, dp, tx.init(gp), tx.init(dp), kz), batch
