"""Recurrent models: the char LM and sequence classifier build and run; sampling is seeded and carries state."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepcore.core import ShapeError, implicit_promotion
from deepcore.layers.recurrent import SequenceInput, length_mask
from deepcore.models.rnn import char_lm, sample_continuation, seq_classifier

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("models_test_rnn")

V = 11


@pytest.fixture(scope="session", params=["lstm", "gru", "rnn"])
def lm(request):
    model = char_lm(V, embed=6, hidden=8, num_layers=2 if request.param == "gru" else 1, cell=request.param)
    spec, params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 6), jnp.int32))
    return model, spec, params, state


def test_char_lm_shapes_and_carried_state_continue_the_sequence(lm):
    model, spec, params, state = lm
    ids = jax.random.randint(jax.random.key(1), (2, 6), 0, V)
    logits = model.apply(params, state, ids)[0]
    assert spec.shape == logits.shape == (2, 6, V)
    (l1, c1), _ = model.apply(params, state, SequenceInput(ids[:, :4]))
    (l2, _), _ = model.apply(params, state, SequenceInput(ids[:, 4:], carry=c1))
    np.testing.assert_allclose(jnp.concatenate([l1, l2], axis=1), logits, rtol=1e-5, atol=1e-5)


def test_sample_is_deterministic_given_seed_and_greedy_at_zero_temperature(lm):
    model, _, params, state = lm
    prompt = jnp.array([1, 2, 3])
    a = sample_continuation(model, params, prompt, 12, key=jax.random.key(7))
    b = sample_continuation(model, params, prompt, 12, key=jax.random.key(7))
    c = sample_continuation(model, params, prompt, 12, key=jax.random.key(8), temperature=5.0)
    assert a.shape == (12,) and a.dtype == prompt.dtype
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < V))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "another seed (at a high temperature) gives other text"
    # greedy: each sampled id is the argmax of the whole model run on the prompt and the ids sampled before it
    g = sample_continuation(model, params, prompt, 5, key=jax.random.key(0), temperature=0.0)
    logits = model.apply(params, state, jnp.concatenate([prompt, g]))[0]
    np.testing.assert_array_equal(g, jnp.argmax(logits[2:7], axis=-1))
    assert sample_continuation(model, params, jnp.zeros((4, 2), jnp.int32), 3, key=jax.random.key(0)).shape == (4, 3)


def test_sample_rejects_bad_prompts(lm):
    model, _, params, _ = lm
    with pytest.raises(ShapeError, match=r"expected integer prompt ids"):
        sample_continuation(model, params, jnp.zeros((2,)), 3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="temperature"):
        sample_continuation(model, params, jnp.array([1]), 3, key=jax.random.key(0), temperature=-1.0)


def test_char_lm_dropout_needs_a_key_in_train_mode():
    model = char_lm(V, embed=4, hidden=4, dropout=0.5)
    _, params, state = model.init(jax.random.key(0), jax.ShapeDtypeStruct((2, 3), jnp.int32))
    ids = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.apply(params, state, ids, train=True)
    y1 = model.apply(params, state, ids, key=jax.random.key(1), train=True)[0]
    assert not np.allclose(y1, model.apply(params, state, ids)[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_seq_classifier_masks_and_learns(bidirectional):
    model = seq_classifier(3, hidden=6, cell="gru" if bidirectional else "lstm", bidirectional=bidirectional)
    x = jax.random.normal(jax.random.key(1), (6, 5, 4))
    spec, params, state = model.init(jax.random.key(0), x)
    logits = model.apply(params, state, x)[0]
    assert spec.shape == logits.shape == (6, 3)
    # with lengths, padding does not matter: the classifier of the truncated sequence gives the same logits
    mask = length_mask(jnp.array([5, 2, 3, 5, 1, 4]), 5)
    masked = model.apply(params, state, SequenceInput(x, mask))[0]
    np.testing.assert_allclose(masked[1], model.apply(params, state, x[1, :2])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masked[0], logits[0], rtol=1e-5, atol=1e-6)
    if bidirectional:
        return
    # a few Adam steps fit six labelled sequences better
    y = jnp.array([0, 1, 2, 0, 1, 2])
    opt = optax.adam(3e-2)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, state, x)[0], y).mean()

    @jax.jit
    def step(p, o):
        lv, g = jax.value_and_grad(loss)(p)
        with implicit_promotion():   # optax's bias correction promotes implicitly
            u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), o, lv

    p, o = params, opt.init(params)
    first = None
    for _ in range(15):
        p, o, lv = step(p, o)
        first = lv if first is None else first
    assert float(loss(p)) < 0.5 * float(first)
