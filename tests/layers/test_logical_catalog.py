"""Every layer and model of the catalog (deepcore.catalog) with parameters declares their logical axes, so
``logical_axes`` (and sharding by rules) works for each of them, and every name has a rule in the default set."""
import jax
import pytest

from deepcore.catalog import LAYER_CASES, MODEL_CASES
from deepcore.layers.logical import is_names, logical_axes
from deepcore.train.sharding import RULES

CASES = LAYER_CASES + MODEL_CASES
KNOWN = {name for name, _ in RULES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_catalog_layer_with_parameters_declares_its_axes(case):
    model = case.make()
    params = jax.eval_shape(lambda k: model.init(k, case.spec())[1], jax.random.PRNGKey(0))
    axes = logical_axes(model, params=params)
    names, shapes = jax.tree.leaves(axes, is_leaf=is_names), jax.tree.leaves(params)
    assert len(names) == len(shapes)          # one declaration per parameter array, of its rank
    for n, a in zip(names, shapes):
        assert is_names(n) and len(n) == a.ndim and all(n), (case.name, n, a.shape)
        assert set(n) <= KNOWN, (case.name, n, "names without a rule in sharding.RULES")


def test_the_conditional_gan_models_declare_their_axes():
    import jax.numpy as jnp
    from deepcore.models.gan import dcgan_discriminator, dcgan_generator
    labels = jax.ShapeDtypeStruct((2,), jnp.int32)
    for model, x in ((dcgan_generator(4, channels=(6, 3), base=2, num_classes=3, embed_dim=5),
                      jax.ShapeDtypeStruct((2, 4), jnp.float32)),
                     (dcgan_discriminator((3, 4), spectral_norm=True, num_classes=3),
                      jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32))):
        params = jax.eval_shape(lambda k: model.init(k, (x, labels))[1], jax.random.PRNGKey(0))
        axes = logical_axes(model, params=params)
        assert axes["label_embed"]["w"] == ("vocab", "embed")
        names = jax.tree.leaves(axes, is_leaf=is_names)
        assert [len(n) for n in names] == [a.ndim for a in jax.tree.leaves(params)]
