"""Flax NNX: stateful ``nnx.Module``s, ``nnx.Optimizer`` and an ``nnx.jit`` step that updates them in place
(the pattern of Flax's NNX guides). Under bfloat16 the modules compute in ``dtype``, params stay float32."""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from bench.workloads import ADAM, GAN_ADAM, inputs
from bench.workloads.pure_jax import sync  # noqa: F401


class MLP(nnx.Module):
    def __init__(self, sizes, dtype, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            x = nnx.relu(x) if i < len(self.layers) - 1 else x
        return x


class CNN(nnx.Module):
    def __init__(self, channels, classes, dtype, rngs):
        c1, c2, c3 = channels
        self.c1 = nnx.Conv(1, c1, (3, 3), dtype=dtype, rngs=rngs)
        self.c2 = nnx.Conv(c1, c2, (3, 3), dtype=dtype, rngs=rngs)
        self.c3 = nnx.Conv(c2, c3, (3, 3), dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(c3, classes, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.c1(x))
        x = nnx.max_pool(nnx.relu(self.c2(x)), (2, 2), (2, 2))
        x = nnx.max_pool(nnx.relu(self.c3(x)), (2, 2), (2, 2))
        return self.out(x.mean(axis=(1, 2)))


class CharLSTM(nnx.Module):
    def __init__(self, vocab, embed, hidden, dtype, rngs):
        self.embed = nnx.Embed(vocab, embed, dtype=dtype, rngs=rngs)
        self.rnn = nnx.RNN(nnx.OptimizedLSTMCell(embed, hidden, dtype=dtype, rngs=rngs))
        self.out = nnx.Linear(hidden, vocab, dtype=dtype, rngs=rngs)

    def __call__(self, ids):
        return self.out(self.rnn(self.embed(ids)))


class Block(nnx.Module):
    def __init__(self, d, heads, dtype, rngs):
        self.ln1 = nnx.LayerNorm(d, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, d, decode=False, dtype=dtype, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.fc = nnx.Linear(d, 4 * d, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(4 * d, d, dtype=dtype, rngs=rngs)

    def __call__(self, x, mask):
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.proj(nnx.gelu(self.fc(self.ln2(x)), approximate=True))


class GPT(nnx.Module):
    def __init__(self, vocab, d, heads, layers, T, dtype, rngs):
        init = nnx.initializers.normal(0.02)
        self.embed = nnx.Embed(vocab, d, embedding_init=init, dtype=dtype, rngs=rngs)
        self.pos = nnx.Param(init(rngs.params(), (T, d)))
        self.blocks = nnx.List([Block(d, heads, dtype, rngs) for _ in range(layers)])
        self.ln_f = nnx.LayerNorm(d, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(d, vocab, use_bias=False, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(self, ids):
        x = self.embed(ids) + self.pos[...][: ids.shape[1]].astype(self.dtype)
        mask = nnx.make_causal_mask(ids)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln_f(x))


class Generator(nnx.Module):
    def __init__(self, z, channels, base, dtype, rngs):
        c1, c2 = channels
        self.base, self.c1 = base, c1
        self.fc = nnx.Linear(z, base * base * c1, dtype=dtype, rngs=rngs)
        self.up1 = nnx.ConvTranspose(c1, c2, (4, 4), (2, 2), padding="SAME", dtype=dtype, rngs=rngs)
        self.up2 = nnx.ConvTranspose(c2, 1, (4, 4), (2, 2), padding="SAME", dtype=dtype, rngs=rngs)

    def __call__(self, z):
        x = nnx.relu(self.fc(z)).reshape(z.shape[0], self.base, self.base, self.c1)
        return jnp.tanh(self.up2(nnx.relu(self.up1(x))))


class Discriminator(nnx.Module):
    def __init__(self, channels, hw, dtype, rngs):
        c1, c2 = channels
        self.c1 = nnx.Conv(1, c1, (4, 4), (2, 2), padding="SAME", dtype=dtype, rngs=rngs)
        self.c2 = nnx.Conv(c1, c2, (4, 4), (2, 2), padding="SAME", dtype=dtype, rngs=rngs)
        self.out = nnx.Linear((hw // 4) ** 2 * c2, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        x = nnx.leaky_relu(self.c1(x), 0.2)
        x = nnx.leaky_relu(self.c2(x), 0.2)
        return self.out(x.reshape(x.shape[0], -1))[:, 0].astype(jnp.float32)


def model(workload, c, dtype, rngs):
    if workload == "W1":
        return MLP(c["sizes"], dtype, rngs)
    if workload == "W2":
        return CNN(c["channels"], c["classes"], dtype, rngs)
    if workload == "W3":
        return CharLSTM(c["vocab"], c["embed"], c["hidden"], dtype, rngs)
    return GPT(c["vocab"], c["d"], c["heads"], c["layers"], c["T"], dtype, rngs)


def build(workload, cfg, dtype="float32"):
    dtype = jnp.dtype(dtype)
    batch = {k: jnp.asarray(v) for k, v in inputs(workload, cfg).items()}
    rngs = nnx.Rngs(0)
    if workload == "W5":
        return _gan(cfg, dtype, batch, rngs)
    net = model(workload, cfg, dtype, rngs)
    opt = nnx.Optimizer(net, optax.adam(**ADAM), wrt=nnx.Param)

    @nnx.jit
    def train(net, opt, batch):
        def loss_fn(net):
            logits = net(batch["x"]).astype(jnp.float32)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(net)
        opt.update(net, grads)
        return loss

    def step(state, batch):
        return state, train(*state, batch)

    return step, (net, opt), batch


def _gan(c, dtype, batch, rngs):
    G = Generator(c["z"], c["g_channels"], c["hw"] // 4, dtype, rngs)
    D = Discriminator(c["d_channels"], c["hw"], dtype, rngs)
    g_opt, d_opt = (nnx.Optimizer(m, optax.adam(**GAN_ADAM), wrt=nnx.Param) for m in (G, D))
    b, noise = batch["image"].shape[0], nnx.Rngs(noise=1)

    @nnx.jit
    def train(G, D, g_opt, d_opt, noise, batch):
        real = batch["image"].astype(dtype)
        fake = jax.lax.stop_gradient(G(jax.random.normal(noise.noise(), (b, c["z"]), dtype)))

        def d_loss(D):
            return jnp.mean(jax.nn.softplus(-D(real))) + jnp.mean(jax.nn.softplus(D(fake)))

        dl, grads = nnx.value_and_grad(d_loss)(D)
        d_opt.update(D, grads)
        z = jax.random.normal(noise.noise(), (b, c["z"]), dtype)

        def g_loss(G):
            return jnp.mean(jax.nn.softplus(-D(G(z))))

        gl, grads = nnx.value_and_grad(g_loss)(G)
        g_opt.update(G, grads)
        return dl + gl

    def step(state, batch):
        return state, train(*state, batch)

    return step, (G, D, g_opt, d_opt, noise), batch
