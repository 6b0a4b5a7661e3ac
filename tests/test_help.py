"""``help()`` finds the API: every package's rendered help names each public name, each with a docstring."""
import importlib
import inspect
import pydoc

import pytest

PACKAGES = ["deepcore", "deepcore.layers", "deepcore.train", "deepcore.data", "deepcore.models", "deepcore.gan",
            "deepcore.interpret", "deepcore.gradcheck", "deepcore.catalog", "deepcore.losses", "deepcore.metrics",
            "deepcore.initializers", "deepcore.activations", "deepcore.tree"]
# what a newcomer looks for first (issue 19)
EXPECTED = {
    "deepcore.layers": ["Dense", "Conv2D", "GRU", "LSTM", "serial", "parallel", "residual", "compose", "BatchNorm",
                        "MultiHeadAttention", "Dropout", "Embedding", "MaxPool2D"],
    "deepcore.train": ["init_state", "train_step", "eval_step", "fit", "classifier_loss", "regression_loss",
                       "reconstruction_loss", "prediction_loss", "per_example_grads", "init_population",
                       "population_step"],
    "deepcore.data": ["load", "make_batches", "windows", "split_series", "lm_windows", "random_crop"],
    "deepcore.models": ["MLP", "VGG", "ResNet", "char_lm", "TransformerLM", "ViT", "dcgan_generator"],
    "deepcore.metrics": ["roc_auc", "average_precision", "r2_score", "accuracy"],
    "deepcore.initializers": ["he_normal", "glorot_uniform", "zeros"],
}


@pytest.mark.parametrize("name", PACKAGES)
def test_help_names_every_public_name_and_each_is_documented(name):
    mod = importlib.import_module(name)
    text = pydoc.render_doc(mod, renderer=pydoc.plaintext)
    assert mod.__all__, name
    for public in list(mod.__all__) + EXPECTED.get(name, []):
        assert public in text, f"help({name}) does not name {public}"
    for public in mod.__all__:
        obj = getattr(mod, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{public} has no docstring"


def test_help_of_layers_shows_a_one_line_summary_of_dense_and_serial():
    import deepcore.layers as L
    text = pydoc.render_doc(L, renderer=pydoc.plaintext)
    assert "Dense(features)" in text and "serial(*layers)" in text and "FUNCTIONS" in text
    assert inspect.getdoc(L.Dense).splitlines()[0] in text  # the function section is there too, with its doc
