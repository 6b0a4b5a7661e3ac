"""Layers: each a :class:`deepcore.core.Layer`, a small ``(init, apply)`` pair."""
from deepcore.layers.basic import (Activation, Elu, Flatten, Gelu, GeluTanh, Identity, Lambda, LeakyRelu,
                                   LogSoftmax, Relu, Reshape, Sigmoid, Silu, Softmax, Softplus, Swish, Tanh)
from deepcore.layers.combinators import parallel, residual, serial
from deepcore.layers.dense import Dense
from deepcore.layers.dropout import Dropout
from deepcore.layers.embed import Embedding, embed_attend
from deepcore.layers.norm import BatchNorm, GroupNorm, LayerNorm, RMSNorm
