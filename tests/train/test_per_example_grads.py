"""Per-example gradients on the fast path (``jax.jit`` of ``per_example_grads``: a ``vmap`` of ``grad``) equal a
loop of single-example ``jax.jit(grad)`` calls, for every catalog model (train and eval mode), at more than one
input size for the image models; and a population step equals separate runs for a BatchNorm + MaxPool CNN.

This is the check that would have caught issue 17: XLA:CPU compiled ``jnp.max``'s gradient (the mask
``x == max(x)``) wrongly for a tiling MaxPool after BatchNorm, by factors of 0.5-5, only at some input sizes
(6x6 wrong, 12x12 right). Compiled with full backend optimisation, as users run it (level 0 hides the bug).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore.catalog import LAYER_CASES, MODEL_CASES
from deepcore.models.cnn import VGG
from deepcore.train import classifier_loss, init_state, make_update, per_example_grads
from deepcore.train.population import init_population, member, population_step

# every catalog model, plus the layer cases that mix a normalisation with a max (the pattern of issue 17)
LAYERS = ("cnn_block", "max_pool2d", "max_pool3d", "global_max_pool", "batch_norm", "group_norm")
CASES = {c.name: c for c in MODEL_CASES + [c for c in LAYER_CASES if c.name in LAYERS]}
# a second input size for the image models (size-dependent miscompiles); the VGG was wrong on 6x6
OTHER_SIZE = {"cnn_vgg": (3, 6, 6, 2), "resnet_tiny": (2, 6, 6, 1), "cnn_block": (2, 6, 6, 1),
              "max_pool2d": (2, 6, 6, 3), "global_max_pool": (2, 5, 5, 4)}
PARAMS = [pytest.param(n, s, marks=pytest.mark.xdist_group(f"per_example_{n}"), id=f"{n}-{'x'.join(map(str, s))}")
          for n in CASES for s in [CASES[n].shape] + ([OTHER_SIZE[n]] if n in OTHER_SIZE else [])]


def loss_fn(lay, cotangent, modes):
    """``per_example_grads``'s loss: the outputs of one batch in each of ``modes`` (``train`` values) against
    fixed cotangents, so one compile covers train and eval mode."""

    def loss(params, state, batch, key, train):
        total, new_state = 0.0, state
        for mode in modes:
            y, s = lay.apply(params, state, batch, key=key, train=mode)
            new_state = s if mode else new_state
            total = total + sum(jnp.vdot(a, c[mode]) for a, c in zip(jax.tree.leaves(y), cotangent))
        return total, (new_state, {})

    return loss


def setup(name, shape):
    case = CASES[name]
    case = type(case)(**{**case.__dict__, "shape": shape})
    lay = case.make()
    spec, params, state = lay.init(jax.random.PRNGKey(0), case.spec())
    x = case.input(jax.random.PRNGKey(2))
    leaves = jax.tree.leaves(spec)
    keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
    # one example's output has the batch dim of size 1; the cotangent differs between modes and examples' outputs
    cot = [{m: jax.random.normal(jax.random.fold_in(k, m), (1,) + s.shape[1:]) for m in (False, True)}
           for k, s in zip(keys, leaves)]
    return lay, params, state, x, cot


@pytest.mark.parametrize("name,shape", PARAMS)
def test_jit_vmap_per_example_grads_equal_a_loop_of_single_examples(name, shape):
    lay, params, state, x, cot = setup(name, shape)
    case = CASES[name]  # train and eval mode differ only for layers with state or randomness
    loss = loss_fn(lay, cot, (False, True) if case.stateful or case.stochastic else (True,))
    key = jax.random.PRNGKey(4)
    losses, grads, states = jax.jit(per_example_grads(loss))(params, state, x, key)

    one = jax.jit(jax.value_and_grad(lambda p, s, xb, k: loss(p, s, xb, k, True), has_aux=True))
    for i, k in enumerate(jax.random.split(key, x.shape[0])):  # per_example_grads gives example i key i
        (l_i, (s_i, _)), g_i = one(params, state, x[i:i + 1], k)
        where = f"{name} {shape} example {i}"
        np.testing.assert_allclose(losses[i], l_i, rtol=1e-5, atol=1e-5, err_msg=where)
        for path, a, b in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads), jax.tree.leaves(g_i)):
            scale = float(jnp.max(jnp.abs(b))) + 1e-3  # relative to the leaf's largest entry: float32 sums
            np.testing.assert_allclose(a[i] / scale, b / scale, rtol=0, atol=2e-5,
                                       err_msg=f"{where} {jax.tree_util.keystr(path[0])}")
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-5, err_msg=where), states, s_i)


@functools.lru_cache(maxsize=None)
def vgg_and_batches():
    model = VGG(3, ((4,), (6,)), hidden=(5,))  # conv-BatchNorm-ReLU, 2x2 MaxPool, conv-BatchNorm-ReLU, head
    rng = np.random.default_rng(0)
    batches = [{"x": rng.normal(size=(4, 6, 6, 1)).astype(np.float32), "y": rng.integers(0, 3, 4).astype(np.int32)}
               for _ in range(3)]
    return model, batches


@pytest.mark.xdist_group("per_example_population")
def test_population_of_batchnorm_maxpool_cnns_equals_separate_runs():
    model, batches = vgg_and_batches()
    spec = jax.ShapeDtypeStruct((4, 6, 6, 1), jnp.float32)
    loss, lrs = classifier_loss(model), [0.05, 0.1, 0.2]
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    pop = init_population(lambda k: model.init(k, spec)[1:], tx, seeds=range(len(lrs)), learning_rate=lrs)
    step = population_step(loss, tx)
    for b in batches:
        pop, _ = step(pop, b)

    run_step = jax.jit(lambda s, b, lr: make_update(loss, optax.sgd(lr))(s, b))
    for i, lr in enumerate(lrs):
        s = init_state(model, spec, optax.sgd(lr), seed=i)
        for b in batches:
            s, _ = run_step(s, b, lr)
        got = member(pop, i)
        for what, a, b in [("params", got.params, s.params), ("model_state", got.model_state, s.model_state)]:
            jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5, err_msg=f"{i} {what}"),
                         a, b)


def test_per_example_grads_take_key_none_like_every_apply_and_run_in_train_mode():
    model, batches = vgg_and_batches()
    _, params, state = model.init(jax.random.PRNGKey(0), batches[0]["x"])
    modes = []

    def loss(p, s, batch, key, train):
        modes.append(train)
        return classifier_loss(model)(p, s, batch, key, train)

    losses, grads, states = per_example_grads(loss)(params, state, batches[0], None)
    assert modes and all(modes) and losses.shape == (4,)
    one = jax.grad(lambda p, b: loss(p, state, b, None, True)[0])
    for i in range(4):  # equals the gradient of example i alone
        g_i = one(params, jax.tree.map(lambda a: a[i:i + 1], batches[0]))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6), grads, g_i)
