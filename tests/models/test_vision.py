"""Image classifiers: shapes at 28x28x1 and 32x32x3, BatchNorm train/eval behaviour, gradients, bfloat16."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.catalog import MODEL_CASES
from deepcore.gradcheck import check_case
from deepcore.models import MLP, VGG, ResNet

BUILDERS = {
    "mlp": lambda: MLP(10, (16, 8), feature_dims=3, dropout=0.5),
    "vgg": lambda: VGG(10, ((4,), (8, 8), (8,)), hidden=(6,), dropout=0.5),
    "resnet": lambda: ResNet(10, (4, 8, 8), (1, 2, 1)),
}


@pytest.mark.parametrize("name,shape", [("mlp", (3, 28, 28, 1)), ("vgg", (3, 28, 28, 1)), ("resnet", (3, 28, 28, 1)),
                                        ("vgg", (3, 32, 32, 3)), ("resnet", (3, 32, 32, 3))])
def test_builds_and_runs(name, shape):
    model = BUILDERS[name]()
    out, params, state = model.init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (3, 10)
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    y_eval, _ = model.apply(params, state, x)
    y_train, _ = model.apply(params, state, x, key=jax.random.PRNGKey(2), train=True)
    assert y_eval.shape == y_train.shape == (3, 10)
    assert np.all(np.isfinite(y_eval)) and np.all(np.isfinite(y_train))
    if shape[-1] == 1:
        one, _ = model.apply(params, state, x[0])        # a single example, no batch dim
        np.testing.assert_allclose(one, y_eval[0], rtol=1e-4, atol=1e-5)
    if name == "resnet":
        assert "shortcut" not in params["stage_0"]["block_0"]       # 4 -> 4 channels, stride 1: identity
        assert params["stage_1"]["block_0"]["shortcut"]["conv_0"]["w"].shape == (1, 1, 4, 8)
        assert "shortcut" not in params["stage_1"]["block_1"]
        assert params["head"]["w"].shape == (8, 10)


def test_resnet_batchnorm_statistics_train_vs_eval():
    model = ResNet(10, (4, 8), (1, 1))
    _, params, state = model.init(jax.random.PRNGKey(0), (8, 28, 28, 1))
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(1), (8, 28, 28, 1))
    _, s_train = model.apply(params, state, x, train=True)
    _, s_eval = model.apply(params, state, x, train=False)
    before, after, unchanged = (jax.tree.leaves(t) for t in (state, s_train, s_eval))
    assert len(before) == len(after) == len(unchanged) and len(before) == 2 * 6   # stem + 2x2 blocks + 1 shortcut
    assert all(not np.allclose(a, b) for a, b in zip(before, after))     # every running mean/var moved
    assert all(np.array_equal(a, b) for a, b in zip(before, unchanged))
    stem = s_train["stem"]["batch_norm_0"]["mean"]       # running = 0.9 * 0 + 0.1 * batch mean of the stem conv
    conv = jax.lax.conv_general_dilated(x, params["stem"]["conv_0"]["w"], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(stem, 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    # eval mode normalises with the running statistics: changing them changes the output
    y0, _ = model.apply(params, state, x)
    y1, _ = model.apply(params, s_train, x)
    assert not np.allclose(y0, y1)


@pytest.mark.parametrize("case", [c for c in MODEL_CASES if c.name in ("mlp", "resnet_tiny")],
                         ids=lambda c: c.name)
def test_gradients_float64(case):
    # cnn_vgg (same layers as resnet_tiny plus max-pool) is checked by the catalog-wide gradient check
    # (``python -m deepcore.gradcheck``); here the two cheapest cases keep the file fast.
    report = check_case(case, modes=("fast",))
    assert report.ok, report.table()


def test_bfloat16_compute_with_float32_params():
    model = VGG(10, ((4,), (8,)))
    _, params, state = model.init(jax.random.PRNGKey(0), (2, 28, 28, 1))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    y, new_state = model.apply(params, state, jnp.ones((2, 28, 28, 1), jnp.bfloat16), train=True)
    assert y.dtype == jnp.bfloat16
    assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(new_state))
