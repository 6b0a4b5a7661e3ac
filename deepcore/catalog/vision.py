"""Cases for the image classifiers (:mod:`deepcore.models.mlp`, :mod:`deepcore.models.cnn`,
:mod:`deepcore.models.resnet`) and the convolutional autoencoder (:mod:`deepcore.models.autoencoder`): tiny
configurations, 8x8 inputs."""
from deepcore.catalog.case import Case
from deepcore.layers.basic import Tanh
from deepcore.models.autoencoder import ConvAutoencoder
from deepcore.models.cnn import VGG
from deepcore.models.mlp import MLP
from deepcore.models.resnet import ResNet

MODEL_CASES = [
    Case("mlp", lambda: MLP(3, (5, 4), activation=Tanh, feature_dims=3), (2, 4, 4, 1)),
    Case("cnn_vgg", lambda: VGG(3, ((2,), (3,)), hidden=(4,)), (3, 4, 4, 2), stateful=True, smooth=False,
         batch_axis=None),
    Case("resnet_tiny", lambda: ResNet(3, (2, 3), (1, 1)), (2, 4, 4, 1), stateful=True, smooth=False,
         batch_axis=None),
    Case("conv_autoencoder", lambda: ConvAutoencoder((8, 8, 1), channels=(2, 3), latent=3), (2, 8, 8, 1),
         smooth=False),
]
