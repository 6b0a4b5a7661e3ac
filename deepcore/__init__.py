"""deepcore: a pure-functional deep-learning research library on JAX.

Layers are ``(init, apply)`` pairs over plain-dict parameter pytrees; everything is a pure function. Index:

Imported here
    layers          Dense, Conv2D, GRU, MultiHeadAttention, serial, parallel, compose, ... (``help(deepcore.layers)``)
    activations     relu, gelu, ... as functions
    initializers    ``jax.nn.initializers`` kinds: zeros/ones initialisers, he_normal() and the rest factories
    losses          mse, mae, huber, softmax_cross_entropy, ... with weights, masks and one reduction rule
    metrics         accuracy, top_k_accuracy, confusion_matrix, roc_auc, average_precision, r2_score, ...
    tree            summary, param_count, freeze, paths
    vae             reparameterize, gaussian_kl, discretized_logistic_log_prob, elbo_loss, importance_weighted_bound
    Layer, layer, ShapeError, Spec, as_spec, summary, param_count, freeze
Imported on demand (they pull in optax/orbax/TFDS)
    deepcore.train      state, loss builders, compiled steps, fit, populations, parallel layouts, checkpoints
    deepcore.data       TFDS names offline, resumable batching, augmentations, text and series windows
    deepcore.models     MLP, VGG, ResNet; rnn, transformer, vit, gan families
    deepcore.gradcheck  gradient checks of layers, functions and Flax/Equinox models
    deepcore.interpret  attributions, activation capture, calibration, ensembles
    deepcore.gan        GAN losses, penalties and the two-network step
    deepcore.diffusion  DDPM noise schedules, the denoising loss, DDPM and DDIM samplers
    deepcore.catalog    example configurations of every layer and model
    deepcore.anomaly    anomaly scores: reconstruction error, transformation and Dirichlet scores, center distance
"""
__version__ = "0.1.0"

from deepcore import activations, initializers, layers, losses, metrics, tree, vae  # noqa: F401
from deepcore.core import Layer, ShapeError, Spec, as_spec, layer  # noqa: F401
from deepcore.tree import freeze, param_count, summary  # noqa: F401

__all__ = ["Layer", "layer", "ShapeError", "Spec", "as_spec", "summary", "param_count", "freeze",
           "layers", "activations", "initializers", "losses", "metrics", "tree", "vae"]
