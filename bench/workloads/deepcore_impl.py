"""deepcore: the library's models and layers, stepped by ``deepcore.train.train_step`` (W5:
``deepcore.gan.gan_train_step``), with the library's defaults (the step also returns accuracy and the
gradient norm; W5's generator upsamples with phase-decomposed transposed convolutions)."""
import jax
import jax.numpy as jnp
import optax

from bench.workloads import ADAM, GAN_ADAM, inputs
from deepcore import layers as L
from deepcore.gan import gan_train_step, init_gan_state
from deepcore.models.gan import dcgan_discriminator, dcgan_generator
from deepcore.models.mlp import MLP
from deepcore.models.rnn import char_lm
from deepcore.models.transformer import TransformerLM
from deepcore.train import classifier_loss, init_state, train_step


def sync(loss):
    return float(jax.block_until_ready(loss))


def model(workload, c, scan=True, **options):
    if workload == "W1":
        return MLP(c["sizes"][-1], widths=c["sizes"][1:-1])
    if workload == "W2":
        c1, c2, c3 = c["channels"]
        return L.serial(L.Conv(c1, (3, 3)), L.Relu, L.Conv(c2, (3, 3)), L.Relu, L.MaxPool((2, 2)),
                        L.Conv(c3, (3, 3)), L.Relu, L.MaxPool((2, 2)), L.GlobalAvgPool(), L.Dense(c["classes"]))
    if workload == "W3":
        return char_lm(c["vocab"], embed=c["embed"], hidden=c["hidden"])
    if workload.startswith("W4"):
        return TransformerLM(vocab_size=c["vocab"], d_model=c["d"], num_layers=c["layers"], num_heads=c["heads"],
                             max_len=c["T"], scan=scan, **options)
    raise ValueError(workload)


def build(workload, cfg, dtype="float32", scan=True, **options):
    """``scan``: the transformers' blocks scanned over a stacked layer axis (the library's default) or unrolled;
    ``options``: further ``TransformerLM`` options (``implementation``, ``remat``)."""
    compute = None if dtype == "float32" else jnp.dtype(dtype)
    batch = {k: jnp.asarray(v) for k, v in inputs(workload, cfg).items()}
    if workload == "W5":
        tx = optax.adam(**GAN_ADAM)
        g = dcgan_generator(cfg["z"], channels=cfg["g_channels"], base=cfg["hw"] // 4, batch_norm=False)
        d = dcgan_discriminator(cfg["d_channels"])
        img = batch["image"]
        state = init_gan_state(g, d, jax.ShapeDtypeStruct((img.shape[0], cfg["z"]), jnp.float32),
                               jax.ShapeDtypeStruct(img.shape, jnp.float32), tx, tx, seed=0, ema=False)
        step = gan_train_step(g, d, tx, tx, z_dim=cfg["z"], ema_decay=None, compute_dtype=compute)

        def gan(state, batch):
            state, m = step(state, batch)
            return state, m["d_loss"] + m["g_loss"]

        gan.jitted = step  # the compiled step, for bench/hlo_compare.py
        return gan, state, batch
    net = model(workload, cfg, scan, **options)
    tx = optax.adam(**ADAM)
    step = train_step(classifier_loss(net), tx, compute_dtype=compute)
    state = init_state(net, jax.ShapeDtypeStruct(batch["x"].shape, batch["x"].dtype), tx, seed=0)

    def classify(state, batch):
        state, m = step(state, batch)
        return state, m["loss"]

    classify.jitted = step
    return classify, state, batch
