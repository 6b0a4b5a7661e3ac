"""Sample quality of a 28x28x1 image GAN: the Fréchet distance in a fixed small classifier's features.

    params, trained_now = load_classifier("cache/fashion_mnist_fid_classifier_e2_s0", train_arrays, epochs=2.0)
    score = FrechetScore(params, reference_images)          # float images in [-1, 1], (N, 28, 28, 1)
    score(generated)                                        # Fréchet distance to the reference (float)
    score.class_match(generated, labels)                    # how often the classifier says ``labels``

The classifier (:func:`classifier`: two stride-2 3x3 convs 32, 64 - dense 128 - dense 10, ReLU) is trained
once with Adam(1e-3) on the training images and cached as an orbax checkpoint; its penultimate 128 ReLU
units are the features. Fréchet distances of different feature extractors are not comparable: this is
not Inception's FID.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import numpy as np

from deepcore.gan.frechet import feature_stats, frechet_distance

BATCH = 500   # images per classifier call


def classifier():
    """A small CNN ``(B, 28, 28, 1) -> (B, 10)``: params ``{"features": ..., "head": ...}``."""
    from deepcore import initializers as I
    from deepcore import layers as L

    features = L.serial(L.Conv2D(32, 3, strides=2, w_init=I.he_normal()), L.Relu,
                        L.Conv2D(64, 3, strides=2, w_init=I.he_normal()), L.Relu,
                        L.Flatten(), L.Dense(128, w_init=I.he_normal()), L.Relu)
    return L.serial({"features": features, "head": L.Dense(10)})


def unit(images) -> np.ndarray:
    """uint8 images ``[0, 255]`` -> float32 ``[-1, 1]`` (numpy)."""
    return np.asarray(images).astype(np.float32) / 127.5 - 1


def train_classifier(train_arrays, *, epochs: float = 2.0, seed: int = 0, batch_size: int = 128):
    """Train :func:`classifier` with Adam(1e-3) for ``epochs`` on ``{"image": uint8, "label"}``; its params."""
    import optax

    from deepcore.data import make_batches
    from deepcore.train import classifier_loss, init_state, train_step

    model = classifier()
    tx = optax.adam(1e-3)
    state = init_state(model, jax.ShapeDtypeStruct((batch_size, 28, 28, 1), jnp.float32), tx, seed)
    loss = classifier_loss(model)
    step = train_step(lambda p, s, b, k, t: loss(p, s, {"x": b["image"].astype(jnp.float32) / 127.5 - 1,
                                                         "y": b["label"]}, k, t), tx)
    pipe = make_batches(train_arrays, batch_size, seed=seed)
    steps = max(1, round(epochs * pipe.steps_per_epoch))
    for i, batch in enumerate(pipe.batches(0)):
        if i == steps:
            break
        state, _ = step(state, batch)
    return state.params


def load_classifier(path: str, train_arrays, **train_kw):
    """``(params, trained_now)``: the classifier cached in the folder ``path`` (an orbax checkpoint), trained
    with :func:`train_classifier` and saved there first if it is not there."""
    from deepcore.train import Checkpointer

    template = classifier().init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))[1]
    with Checkpointer(path, keep=1, async_save=False) as ckpt:
        if ckpt.latest_step() is not None:
            return ckpt.restore(template)[0], False
        params = jax.device_get(train_classifier(train_arrays, **train_kw))
        ckpt.save(0, params)
    return params, True


class FrechetScore:
    """The Fréchet distance of images to ``reference (N, 28, 28, 1)`` (floats in [-1, 1]) in the features of
    the classifier with ``params``; also its test accuracy and the class agreement of conditional samples."""

    def __init__(self, params, reference):
        clf = classifier()
        features = clf.children[0][1]
        self.params = params
        self._features = jax.jit(lambda p, x: features.apply(p["features"], {}, x)[0])
        self._logits = jax.jit(lambda p, x: clf.apply(p, {}, x)[0])
        self.reference = feature_stats(self.features(reference))

    def _batched(self, fn, x) -> np.ndarray:
        return np.concatenate([np.asarray(fn(self.params, jnp.asarray(x[i:i + BATCH])))
                               for i in range(0, len(x), BATCH)])

    def features(self, images) -> np.ndarray:
        """Penultimate-layer features ``(N, 128)``."""
        return self._batched(self._features, images)

    def predict(self, images) -> np.ndarray:
        """The classifier's class ids ``(N,)``."""
        return self._batched(self._logits, images).argmax(-1)

    def __call__(self, images) -> float:
        return frechet_distance(*self.reference, *feature_stats(self.features(images)))

    def class_match(self, images, labels) -> float:
        """The fraction of ``images`` the classifier assigns to ``labels (N,)``."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))


def sample_quality(generator, score: FrechetScore, z, y, *, conditional: bool):
    """``(quality, generate)`` for a generator layer and the fixed latents ``z (N, z_dim)``, labels ``y (N,)``:
    ``generate(params, g_state, z, y)`` -> numpy images in batches of ``BATCH`` (one compiled program);
    ``quality(params, g_state, prefix="")`` -> ``{prefix + "fid"}`` of ``z``'s images under ``score`` (and
    ``prefix + "class_match"`` when ``conditional``)."""
    from deepcore.gan.step import generate_images

    gen = jax.jit(lambda p, s, z, y: generate_images(generator, p, s, z, y if conditional else None))

    def generate(params, g_state, z, y):
        return np.concatenate([np.asarray(gen(params, g_state, z[i:i + BATCH], y[i:i + BATCH]))
                               for i in range(0, len(z), BATCH)])

    def quality(params, g_state, prefix=""):
        x = generate(params, g_state, z, y)
        return {prefix + "fid": score(x), **({prefix + "class_match": score.class_match(x, y)} if conditional else {})}

    return quality, generate


def cache_name(dataset: str, epochs: float, seed: int = 0) -> str:
    """The classifier cache's folder name for a dataset and training length."""
    return f"{dataset}_fid_classifier_e{epochs:g}_s{seed}"


def reference_space(train, test, n: int, *, cache_dir: str, dataset: str, epochs: float = 2.0):
    """The fixed feature space every generator recipe is scored in: the classifier cached in ``cache_dir`` (trained
    once, seed 0), ``n`` training images chosen by ``default_rng(0)`` as the reference, and the floor (the first
    ``n`` test images against them). ``train``/``test``: ``{"image", "label"}`` arrays. Returns
    ``(score, floor, classifier path, trained_now)``."""
    path = os.path.join(cache_dir, cache_name(dataset, epochs))
    params, trained_now = load_classifier(path, train, epochs=epochs, seed=0)
    idx = np.random.default_rng(0).choice(len(train["label"]), n, replace=False)
    score = FrechetScore(params, unit(train["image"][idx]))
    return score, score(unit(test["image"][:n])), path, trained_now


__all__ = ["classifier", "unit", "train_classifier", "load_classifier", "FrechetScore", "cache_name", "BATCH",
           "reference_space"]
