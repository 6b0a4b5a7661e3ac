"""GAN training: losses, gradient penalties, and one compiled step updating both networks.

    G, D = dcgan_generator(64), dcgan_discriminator(spectral_norm=True)
    state = init_gan_state(G, D, (64, 64), (64, 28, 28, 1), g_tx, d_tx, seed=0)
    step = gan_train_step(G, D, g_tx, d_tx, z_dim=64, loss=losses.hinge, penalty="r1", penalty_weight=5.0)
    state, metrics = step(state, {"image": uint8_images})

Index:
    losses (nonsaturating, hinge, wasserstein), GANLoss, LOSSES   losses as pairs of callables ``GANLoss(d, g)``
    d_loss, g_loss                           the discriminator's and generator's loss under a named or given loss
    r1_penalty, gradient_penalty, PENALTIES  R1 and WGAN-GP gradient penalties, callables ``(d_fn, real, fake, key)``
    feature_stats, frechet_distance          the Fréchet distance of sample quality (:mod:`deepcore.gan.frechet`)
    GANState, init_gan_state                 both networks' parameters, states and optimiser states in one pytree
    gan_train_step, make_gan_update          one compiled step updating both networks (or the pure update)
    generate_images, to_unit_range           images from the generator; uint8 images to [-1, 1]
"""
from deepcore.gan import losses
from deepcore.gan.frechet import feature_stats, frechet_distance
from deepcore.gan.losses import LOSSES, GANLoss, d_loss, g_loss
from deepcore.gan.penalties import PENALTIES, gradient_penalty, r1_penalty
from deepcore.gan.step import GANState, gan_train_step, init_gan_state, make_gan_update, generate_images, to_unit_range

__all__ = ["losses", "GANLoss", "LOSSES", "d_loss", "g_loss", "PENALTIES", "r1_penalty", "gradient_penalty",
           "feature_stats", "frechet_distance", "GANState", "init_gan_state", "make_gan_update", "gan_train_step",
           "generate_images", "to_unit_range"]
