"""Speed of three forms of a tiling 2x2 max-pool in the CNN experiment's VGG training step (batch 128, 28x28x1,
BatchNorm, Adam), interleaved in one process, and each form's jit-vs-eager gradient error on the float64
reproduction of the XLA:CPU miscompile (BUILD_NOTES.md, issue 17): reshape + max (the old form, wrong gradients
on CPUs with FMA), reduce_window (select-and-scatter), reshape + a max whose JVP goes to the argmax (deepcore's).

    python bench/pool_forms.py 6                    # 6 rounds of 5 steps per form
    taskset -c 0,1 python bench/pool_forms.py 6     # on two cores
"""
import functools, statistics, sys, time
import jax, jax.numpy as jnp, numpy as np, optax
from jax import lax
import deepcore.models.cnn as cnn
from deepcore.core import layer, simple_init

def tiles(x, d):
    return x.reshape(sum(((n // k, k) for n, k in zip(x.shape, d)), ()))

@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def argmax_max(x, axes):
    return x.max(axis=axes)

@argmax_max.defjvp
def _(axes, primals, tangents):
    (x,), (t,) = primals, tangents
    keep = tuple(a for a in range(x.ndim) if a not in axes)
    last = lambda a: a.transpose(keep + axes).reshape(tuple(x.shape[i] for i in keep) + (-1,))
    w = last(x)
    hit = jnp.arange(w.shape[-1]) == jnp.argmax(w, -1)[..., None]
    return x.max(axis=axes), jnp.sum(jnp.where(hit, last(t), 0), -1)

ODD = lambda x: tuple(range(1, 2 * x.ndim, 2))
FORMS = {"reshape_max": lambda x, d: tiles(x, d).max(axis=ODD(x)),
         "reduce_window": lambda x, d: lax.reduce_window(x, -jnp.inf, lax.max, d, d, "VALID"),
         "argmax_jvp": lambda x, d: argmax_max(tiles(x, d), ODD(x))}

with jax.enable_x64(True):
    for name, pool in FORMS.items():
        f = lambda y: jax.grad(lambda y: pool(y - y.mean((1, 2), keepdims=True), (1, 2, 2, 1)).sum())(y).transpose(1, 2, 0, 3)
        y = jax.random.normal(jax.random.PRNGKey(0), (8, 6, 6, 4), jnp.float64)
        print(name, "jit vs eager:", float(jnp.max(jnp.abs(jax.jit(f)(y) - f(y)))))

def max_pool(pool):
    def make(window):
        def apply(params, state, x, *, key=None, train=False):
            return pool(x, (1,) * (x.ndim - 3) + tuple(window) + (1,)), state
        return layer("max_pool", simple_init(lambda k, s: ({}, {}), apply), apply)
    return make

rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(128, 28, 28, 1)), jnp.float32)
y = jnp.asarray(rng.integers(0, 10, 128))
steps = {}
for name, pool in FORMS.items():
    cnn.MaxPool = max_pool(pool)
    model, tx = cnn.VGG(10), optax.adam(1e-3)
    _, params, state = model.init(jax.random.PRNGKey(0), x.shape)
    def loss(p, s, model=model):
        logits, s = model.apply(p, s, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), s
    @jax.jit
    def step(p, s, o, loss=loss, tx=tx):
        (_, s), g = jax.value_and_grad(loss, has_aux=True)(p, s)
        u, o = tx.update(g, o)
        return optax.apply_updates(p, u), s, o
    steps[name] = [step, jax.block_until_ready(step(params, state, tx.init(params))), []]
for _ in range(int(sys.argv[1])):          # rounds, the forms interleaved
    for name, z in steps.items():
        for _ in range(5):
            t = time.perf_counter(); z[1] = jax.block_until_ready(z[0](*z[1])); z[2].append(time.perf_counter() - t)
for name, z in steps.items():
    print(f"{name}: median {1e3 * statistics.median(z[2]):.1f} ms over {len(z[2])} steps")
