"""The floor: hand-written JAX steps (params as dicts, ``jax.jit`` with the state donated, ``optax.adam``).

Layouts follow JAX's defaults: dense ``w: (in, out)``, convolutions NHWC/HWIO, LSTM gates ``i, f, g, o``
in ``wi: (D, 4H)``, ``wh: (H, 4H)``. ``build(..., params=...)`` starts from given parameters (tests copy
deepcore's in). Under ``dtype="bfloat16"`` params and float inputs are cast inside the loss (float32 master
weights, float32 loss).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from bench.workloads import ADAM, GAN_ADAM, inputs

NHWC = ("NHWC", "HWIO", "NHWC")
glorot, he = jax.nn.initializers.glorot_uniform(), jax.nn.initializers.he_normal()


def sync(loss):
    return float(jax.block_until_ready(loss))


def _cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()


def _dense(p, x):
    return x @ p["w"] + p["b"]


def _conv(p, x, stride=1):
    return lax.conv_general_dilated(x, p["w"], (stride, stride), "SAME", dimension_numbers=NHWC) + p["b"]


def _maxpool(x):
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _dense_init(key, a, b, init=glorot):
    return {"w": init(key, (a, b), jnp.float32), "b": jnp.zeros((b,), jnp.float32)}


def _conv_init(key, k, cin, cout, init=he):
    return {"w": init(key, (k, k, cin, cout), jnp.float32), "b": jnp.zeros((cout,), jnp.float32)}


# ----------------------------------------------------------------------------- models: init and forward

def mlp_init(key, c):
    s = c["sizes"]
    return [_dense_init(k, a, b) for k, a, b in zip(jax.random.split(key, len(s) - 1), s[:-1], s[1:])]


def mlp_apply(params, x):
    for i, p in enumerate(params):
        x = _dense(p, x)
        x = jax.nn.relu(x) if i < len(params) - 1 else x
    return x


def cnn_init(key, c):
    k = jax.random.split(key, 4)
    c1, c2, c3 = c["channels"]
    return {"conv1": _conv_init(k[0], 3, 1, c1), "conv2": _conv_init(k[1], 3, c1, c2),
            "conv3": _conv_init(k[2], 3, c2, c3), "out": _dense_init(k[3], c3, c["classes"])}


def cnn_apply(p, x):
    x = jax.nn.relu(_conv(p["conv1"], x))
    x = _maxpool(jax.nn.relu(_conv(p["conv2"], x)))
    x = _maxpool(jax.nn.relu(_conv(p["conv3"], x)))
    return _dense(p["out"], x.mean(axis=(1, 2)))


def lstm_init(key, c):
    k = jax.random.split(key, 4)
    h = c["hidden"]
    b = jnp.zeros((4 * h,), jnp.float32).at[h:2 * h].set(1.0)  # forget-gate bias 1
    return {"embed": jax.random.normal(k[0], (c["vocab"], c["embed"]), jnp.float32),
            "lstm": {"wi": glorot(k[1], (c["embed"], 4 * h), jnp.float32),
                     "wh": jax.nn.initializers.orthogonal()(k[2], (h, 4 * h), jnp.float32), "b": b},
            "out": _dense_init(k[3], h, c["vocab"])}


def lstm_apply(p, ids):
    x = jnp.take(p["embed"], ids, axis=0)                       # (B, T, E)
    w = p["lstm"]

    def cell(carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(x_t @ w["wi"] + h @ w["wh"] + w["b"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((ids.shape[0], w["wh"].shape[0]), x.dtype)
    _, hs = lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return _dense(p["out"], jnp.swapaxes(hs, 0, 1))


def gpt_init(key, c):
    d, n = c["d"], c["layers"]
    normal = jax.nn.initializers.normal(0.02)
    ks = jax.random.split(key, 3 + n)
    ln = lambda: {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))}  # noqa: E731

    def block(k):
        k = jax.random.split(k, 4)
        return {"ln1": ln(), "qkv": _dense_init(k[0], d, 3 * d, normal), "out": _dense_init(k[1], d, d, normal),
                "ln2": ln(), "fc": _dense_init(k[2], d, 4 * d, normal), "proj": _dense_init(k[3], 4 * d, d, normal)}

    return {"embed": normal(ks[0], (c["vocab"], d)), "pos": normal(ks[1], (c["T"], d)),
            "blocks": [block(k) for k in ks[3:]], "ln_f": ln(), "head": normal(ks[2], (d, c["vocab"]))}


def _layer_norm(p, x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def gpt_apply(p, ids, heads):
    b, t = ids.shape
    x = jnp.take(p["embed"], ids, axis=0) + p["pos"][:t]
    for blk in p["blocks"]:
        q, k, v = jnp.split(_dense(blk["qkv"], _layer_norm(blk["ln1"], x)), 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, -1) for a in (q, k, v))
        a = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, -1)
        x = x + _dense(blk["out"], a)
        h = jax.nn.gelu(_dense(blk["fc"], _layer_norm(blk["ln2"], x)), approximate=True)
        x = x + _dense(blk["proj"], h)
    return _layer_norm(p["ln_f"], x) @ p["head"]


def gan_init(key, c):
    k = jax.random.split(key, 6)
    g1, g2 = c["g_channels"]
    d1, d2 = c["d_channels"]
    base = c["hw"] // 4
    g = {"fc": _dense_init(k[0], c["z"], base * base * g1), "up1": _conv_init(k[1], 4, g1, g2, glorot),
         "up2": _conv_init(k[2], 4, g2, 1, glorot)}
    d = {"conv1": _conv_init(k[3], 4, 1, d1, glorot), "conv2": _conv_init(k[4], 4, d1, d2, glorot),
         "out": _dense_init(k[5], base * base * d2, 1)}
    return g, d


def generator(p, z):
    base = int(round((p["fc"]["w"].shape[1] // p["up1"]["w"].shape[2]) ** 0.5))
    x = jax.nn.relu(_dense(p["fc"], z)).reshape(z.shape[0], base, base, -1)
    up = lambda q, x: lax.conv_transpose(x, q["w"], (2, 2), "SAME", dimension_numbers=NHWC) + q["b"]  # noqa: E731
    return jnp.tanh(up(p["up2"], jax.nn.relu(up(p["up1"], x))))


def discriminator(p, x):
    x = jax.nn.leaky_relu(_conv(p["conv1"], x, 2), 0.2)
    x = jax.nn.leaky_relu(_conv(p["conv2"], x, 2), 0.2)
    return _dense(p["out"], x.reshape(x.shape[0], -1))[:, 0].astype(jnp.float32)


# ----------------------------------------------------------------------------- steps

MODELS = {"W1": (mlp_init, mlp_apply), "W2": (cnn_init, cnn_apply), "W3": (lstm_init, lstm_apply)}


def classifier_step(apply, tx, dtype):
    def loss_fn(params, batch):
        return _xent(apply(_cast(params, dtype), _cast(batch["x"], dtype)), batch["y"])

    def step(state, batch):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return jax.jit(step, donate_argnums=0)


def gan_step(tx, dtype, c):
    def step(state, batch):
        (gp, dp), (g_opt, d_opt), key = state
        key, k1, k2 = jax.random.split(key, 3)
        real = batch["image"].astype(dtype)
        b = real.shape[0]
        fake = lax.stop_gradient(generator(_cast(gp, dtype), jax.random.normal(k1, (b, c["z"]), dtype)))

        def d_loss(dp):
            p = _cast(dp, dtype)
            return jnp.mean(jax.nn.softplus(-discriminator(p, real))) + jnp.mean(jax.nn.softplus(discriminator(p, fake)))

        dl, grads = jax.value_and_grad(d_loss)(dp)
        updates, d_opt = tx.update(grads, d_opt, dp)
        dp = optax.apply_updates(dp, updates)

        def g_loss(gp):
            x = generator(_cast(gp, dtype), jax.random.normal(k2, (b, c["z"]), dtype))
            return jnp.mean(jax.nn.softplus(-discriminator(_cast(dp, dtype), x)))

        gl, grads = jax.value_and_grad(g_loss)(gp)
        updates, g_opt = tx.update(grads, g_opt, gp)
        gp = optax.apply_updates(gp, updates)
        return ((gp, dp), (g_opt, d_opt), key), dl + gl

    return jax.jit(step, donate_argnums=0)


def build(workload, cfg, dtype="float32", params=None):
    dtype = jnp.dtype(dtype)
    batch = {k: jnp.asarray(v) for k, v in inputs(workload, cfg).items()}
    key = jax.random.PRNGKey(0)
    if workload == "W5":
        tx = optax.adam(**GAN_ADAM)
        g, d = params if params is not None else gan_init(key, cfg)
        state = ((g, d), (tx.init(g), tx.init(d)), jax.random.PRNGKey(1))
        return gan_step(tx, dtype, cfg), state, batch
    tx = optax.adam(**ADAM)
    if workload.startswith("W4"):
        init, apply = gpt_init, lambda p, x: gpt_apply(p, x, cfg["heads"])
    else:
        init, apply = MODELS[workload]
    params = params if params is not None else init(key, cfg)
    return classifier_step(apply, tx, dtype), (params, tx.init(params)), batch
