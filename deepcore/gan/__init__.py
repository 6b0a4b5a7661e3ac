"""GAN training: losses, gradient penalties, and one compiled step updating both networks.

    G, D = dcgan_generator(64), dcgan_discriminator(spectral_norm=True)
    state = init_gan_state(G, D, (64, 64), (64, 28, 28, 1), g_tx, d_tx, seed=0)
    step = gan_train_step(G, D, g_tx, d_tx, z_dim=64, loss="hinge", penalty="r1", penalty_weight=5.0)
    state, metrics = step(state, {"image": uint8_images})
"""
from deepcore.gan.losses import LOSSES, d_loss, g_loss
from deepcore.gan.penalties import gradient_penalty, r1_penalty
from deepcore.gan.step import GANState, gan_train_step, init_gan_state, make_gan_update, generate_images, to_unit_range

__all__ = ["LOSSES", "d_loss", "g_loss", "r1_penalty", "gradient_penalty", "GANState", "init_gan_state",
           "make_gan_update", "gan_train_step", "generate_images", "to_unit_range"]
