"""Equinox: models as pytrees of ``eqx.nn`` layers (unbatched, ``jax.vmap`` over the batch; images CHW),
an ``eqx.filter_jit`` step over ``(model, opt_state)``, ``optax.adam``. Under bfloat16 the floating leaves
are cast inside the loss (float32 master weights)."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.workloads import ADAM, GAN_ADAM, inputs
from bench.workloads.pure_jax import sync  # noqa: F401


def _cast(tree, dtype):
    """Floating array leaves to ``dtype`` (other leaves, e.g. a LayerNorm's eps, unchanged)."""
    floating = lambda a: eqx.is_array(a) and jnp.issubdtype(a.dtype, jnp.floating)  # noqa: E731
    return jax.tree.map(lambda a: a.astype(dtype) if floating(a) else a, tree)


class MLP(eqx.Module):
    layers: list

    def __init__(self, sizes, key):
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            x = jax.nn.relu(x) if i < len(self.layers) - 1 else x
        return x


class CNN(eqx.Module):
    convs: list
    out: eqx.nn.Linear

    def __init__(self, channels, classes, key):
        k = jax.random.split(key, 4)
        ins = (1,) + tuple(channels[:-1])
        self.convs = [eqx.nn.Conv2d(a, b, 3, padding="SAME", key=kk) for a, b, kk in zip(ins, channels, k)]
        self.out = eqx.nn.Linear(channels[-1], classes, key=k[3])

    def __call__(self, x):                                   # (1, H, W)
        pool = eqx.nn.MaxPool2d(2, 2)
        x = jax.nn.relu(self.convs[0](x))
        x = pool(jax.nn.relu(self.convs[1](x)))
        x = pool(jax.nn.relu(self.convs[2](x)))
        return self.out(x.mean(axis=(1, 2)))


class CharLSTM(eqx.Module):
    embed: eqx.nn.Embedding
    cell: eqx.nn.LSTMCell
    out: eqx.nn.Linear

    def __init__(self, vocab, embed, hidden, key):
        k = jax.random.split(key, 3)
        self.embed = eqx.nn.Embedding(vocab, embed, key=k[0])
        self.cell = eqx.nn.LSTMCell(embed, hidden, key=k[1])
        self.out = eqx.nn.Linear(hidden, vocab, key=k[2])

    def __call__(self, ids):                                 # (T,)
        xs = jax.vmap(self.embed)(ids)
        zeros = jnp.zeros((self.cell.hidden_size,), xs.dtype)

        def body(carry, x):
            carry = self.cell(x, carry)
            return carry, carry[0]

        _, hs = jax.lax.scan(body, (zeros, zeros), xs)
        return jax.vmap(self.out)(hs)


class Block(eqx.Module):
    ln1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    ln2: eqx.nn.LayerNorm
    fc: eqx.nn.Linear
    proj: eqx.nn.Linear

    def __init__(self, d, heads, key):
        k = jax.random.split(key, 3)
        self.ln1, self.ln2 = eqx.nn.LayerNorm(d, eps=1e-5), eqx.nn.LayerNorm(d, eps=1e-5)
        self.attn = eqx.nn.MultiheadAttention(heads, d, use_query_bias=True, use_key_bias=True,
                                              use_value_bias=True, use_output_bias=True, key=k[0])
        self.fc, self.proj = eqx.nn.Linear(d, 4 * d, key=k[1]), eqx.nn.Linear(4 * d, d, key=k[2])

    def __call__(self, x, mask):                             # (T, D)
        h = jax.vmap(self.ln1)(x)
        x = x + self.attn(h, h, h, mask=mask)
        h = jax.vmap(self.fc)(jax.vmap(self.ln2)(x))
        return x + jax.vmap(self.proj)(jax.nn.gelu(h, approximate=True))


class GPT(eqx.Module):
    embed: eqx.nn.Embedding
    pos: jax.Array
    blocks: list
    ln_f: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, vocab, d, heads, layers, T, key):
        k = jax.random.split(key, 3 + layers)
        self.embed = eqx.nn.Embedding(weight=0.02 * jax.random.normal(k[0], (vocab, d)))
        self.pos = 0.02 * jax.random.normal(k[1], (T, d))
        self.blocks = [Block(d, heads, kk) for kk in k[3:]]
        self.ln_f = eqx.nn.LayerNorm(d, eps=1e-5)
        self.head = eqx.nn.Linear(d, vocab, use_bias=False, key=k[2])

    def __call__(self, ids):                                 # (T,)
        t = ids.shape[0]
        x = jax.vmap(self.embed)(ids) + self.pos[:t]
        mask = jnp.tril(jnp.ones((t, t), bool))
        for blk in self.blocks:
            x = blk(x, mask)
        return jax.vmap(self.head)(jax.vmap(self.ln_f)(x))


class Generator(eqx.Module):
    fc: eqx.nn.Linear
    up1: eqx.nn.ConvTranspose2d
    up2: eqx.nn.ConvTranspose2d
    base: int = eqx.field(static=True)

    def __init__(self, z, channels, base, key):
        k = jax.random.split(key, 3)
        c1, c2 = channels
        self.base = base
        self.fc = eqx.nn.Linear(z, base * base * c1, key=k[0])
        self.up1 = eqx.nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1, key=k[1])
        self.up2 = eqx.nn.ConvTranspose2d(c2, 1, 4, stride=2, padding=1, key=k[2])

    def __call__(self, z):
        x = jax.nn.relu(self.fc(z)).reshape(-1, self.base, self.base)
        return jnp.tanh(self.up2(jax.nn.relu(self.up1(x))))


class Discriminator(eqx.Module):
    c1: eqx.nn.Conv2d
    c2: eqx.nn.Conv2d
    out: eqx.nn.Linear

    def __init__(self, channels, hw, key):
        k = jax.random.split(key, 3)
        self.c1 = eqx.nn.Conv2d(1, channels[0], 4, stride=2, padding=1, key=k[0])
        self.c2 = eqx.nn.Conv2d(channels[0], channels[1], 4, stride=2, padding=1, key=k[1])
        self.out = eqx.nn.Linear((hw // 4) ** 2 * channels[1], 1, key=k[2])

    def __call__(self, x):
        x = jax.nn.leaky_relu(self.c2(jax.nn.leaky_relu(self.c1(x), 0.2)), 0.2)
        return self.out(x.reshape(-1))[0].astype(jnp.float32)


def model(workload, c, key):
    if workload == "W1":
        return MLP(c["sizes"], key)
    if workload == "W2":
        return CNN(c["channels"], c["classes"], key)
    if workload == "W3":
        return CharLSTM(c["vocab"], c["embed"], c["hidden"], key)
    return GPT(c["vocab"], c["d"], c["heads"], c["layers"], c["T"], key)


def _chw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a


def build(workload, cfg, dtype="float32"):
    dtype = jnp.dtype(dtype)
    batch = {k: jnp.asarray(_chw(v)) for k, v in inputs(workload, cfg).items()}
    key = jax.random.PRNGKey(0)
    if workload == "W5":
        return _gan(cfg, dtype, batch, key)
    net, tx = model(workload, cfg, key), optax.adam(**ADAM)

    def loss_fn(net, batch):
        logits = jax.vmap(_cast(net, dtype))(_cast(batch["x"], dtype)).astype(jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    @eqx.filter_jit(donate="all-except-first")
    def step(batch, state):
        net, opt_state = state
        loss, grads = eqx.filter_value_and_grad(loss_fn)(net, batch)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(net, eqx.is_array))
        return (eqx.apply_updates(net, updates), opt_state), loss

    return (lambda state, batch: step(batch, state)), (net, tx.init(eqx.filter(net, eqx.is_array))), batch


def _gan(c, dtype, batch, key):
    kg, kd, kz = jax.random.split(key, 3)
    G, D = Generator(c["z"], c["g_channels"], c["hw"] // 4, kg), Discriminator(c["d_channels"], c["hw"], kd)
    tx, b = optax.adam(**GAN_ADAM), batch["image"].shape[0]
    arrays = lambda m: eqx.filter(m, eqx.is_array)  # noqa: E731

    @eqx.filter_jit(donate="all-except-first")
    def step(batch, state):
        G, D, g_opt, d_opt, key = state
        key, k1, k2 = jax.random.split(key, 3)
        real = batch["image"].astype(dtype)
        fake = jax.lax.stop_gradient(jax.vmap(_cast(G, dtype))(jax.random.normal(k1, (b, c["z"]), dtype)))

        def d_loss(D):
            Dc = jax.vmap(_cast(D, dtype))
            return jnp.mean(jax.nn.softplus(-Dc(real))) + jnp.mean(jax.nn.softplus(Dc(fake)))

        dl, grads = eqx.filter_value_and_grad(d_loss)(D)
        updates, d_opt = tx.update(grads, d_opt, arrays(D))
        D = eqx.apply_updates(D, updates)

        def g_loss(G):
            x = jax.vmap(_cast(G, dtype))(jax.random.normal(k2, (b, c["z"]), dtype))
            return jnp.mean(jax.nn.softplus(-jax.vmap(_cast(D, dtype))(x)))

        gl, grads = eqx.filter_value_and_grad(g_loss)(G)
        updates, g_opt = tx.update(grads, g_opt, arrays(G))
        return (eqx.apply_updates(G, updates), D, g_opt, d_opt, key), dl + gl

    state = (G, D, tx.init(arrays(G)), tx.init(arrays(D)), kz)
    return (lambda state, batch: step(batch, state)), state, batch
