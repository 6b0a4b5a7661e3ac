"""Model builders, one family per module (``deepcore.models.rnn``, ...). Each returns a :class:`deepcore.core.Layer`."""
from deepcore.models.mlp import MLP  # noqa: E402,F401
from deepcore.models.cnn import VGG  # noqa: E402,F401
from deepcore.models.resnet import BasicBlock, ResNet  # noqa: E402,F401
