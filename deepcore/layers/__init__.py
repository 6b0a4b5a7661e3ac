"""Layers: each a :class:`deepcore.core.Layer`, a small ``(init, apply)`` pair."""
from deepcore.layers.basic import (Activation, Elu, Flatten, Gelu, GeluTanh, Identity, Lambda, LeakyRelu,
                                   LogSoftmax, Relu, Reshape, Sigmoid, Silu, Softmax, Softplus, Swish, Tanh)
from deepcore.layers.combinators import parallel, residual, serial
from deepcore.layers.dense import Dense
from deepcore.layers.dropout import Dropout
from deepcore.layers.embed import Embedding, embed_attend
from deepcore.layers.norm import BatchNorm, GroupNorm, LayerNorm, RMSNorm
from deepcore.layers.conv import (Conv, Conv1D, Conv2D, Conv3D, ConvTranspose, ConvTranspose1D, ConvTranspose2D,
                                  ConvTranspose3D)
from deepcore.layers.pool import (AvgPool, AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool, GlobalMaxPool, MaxPool,
                                  MaxPool1D, MaxPool2D, MaxPool3D)
from deepcore.layers.recurrent import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SequenceInput, SimpleRNN,
                                      SimpleRNNCell, length_mask, scan_cell)
from deepcore.layers.attention import MultiHeadAttention, attention
from deepcore.layers.position import LearnedPositions, SinusoidalPositions
from deepcore.layers.remat import Remat
