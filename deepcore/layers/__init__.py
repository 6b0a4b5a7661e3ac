"""Layers: each a :class:`deepcore.core.Layer`, a small ``(init, apply)`` pair over plain-dict parameters.

``init(key, spec) -> (out_spec, params, state)``; ``apply(params, state, x, *, key=None, train=False) -> (y, state)``.
Shapes are ``(batch, ..., features)`` (channels last). Index:

Dense and embeddings
    Dense(features)                     ``(..., in) -> (..., features)``
    Embedding(vocab, features)          int ``(...) -> (..., features)``; ``embed_attend`` ties the output
Convolution and pooling (N = 1, 2, 3 spatial dims; ``Conv``/``ConvTranspose`` pick N from the kernel size)
    Conv1D/Conv2D/Conv3D(features, k)   ``(B, *spatial, C) -> (B, *spatial', features)``; strides, dilation, groups
    ConvTranspose1D/2D/3D(features, k)  the transposed (upsampling) convolution
    PhaseConvTranspose(features, k)     a stride-s transposed convolution as s*s stride-1 phases
    MaxPool1D/2D/3D, AvgPool1D/2D/3D    windowed pooling; MaxPool/AvgPool take the window tuple
    GlobalAvgPool(), GlobalMaxPool()    ``(B, *spatial, C) -> (B, C)``
Normalisation and regularisation
    BatchNorm(), LayerNorm(), GroupNorm(groups), RMSNorm(), Dropout(rate)
    SpectralNorm(layer), spectral_normalize   a weight divided by its largest singular value (power iteration)
Recurrent (``(B, T, F)`` sequences, ``SequenceInput`` carries lengths)
    SimpleRNN(h), LSTM(h), GRU(h)       layers; ``...Cell`` the step functions, ``RNN(cell)`` runs any cell
    Bidirectional(fwd, bwd), SequenceInput, length_mask, scan_cell
Attention and positions
    MultiHeadAttention(heads, d), attention (the function), LearnedPositions, SinusoidalPositions
    CrossAttention(heads)               decoder queries attending to an encoder's memory (with padding mask)
Diffusion (time conditioning and U-Net parts)
    TimeEmbedding(F), timestep_embedding   timesteps ``(B,) -> (B, F)``: sinusoidal features, then an MLP
    ResBlock(F), Downsample(F), Upsample(F)   U-Net blocks: residual with a time embedding, stride-2, nearest x2
Activations (layers, no parameters)
    Relu, Sigmoid, Tanh, Gelu, GeluTanh, Silu/Swish, Softplus, Elu, Softmax, LogSoftmax, LeakyRelu(slope),
    Activation(fn), Lambda(fn), Identity, Flatten(), Reshape(shape)
Combinators
    serial(*layers)                     a stack; children named ``dense_0``, ... or by a dict
    parallel(*layers, merge=)           fan-out merged by sum, product, concat, a tuple or any function
    residual(body, shortcut=Identity)   ``body(x) + shortcut(x)``
    compose(name, children, forward)    a layer from named sub-layers and ``forward(call, x)``
    Remat(layer, policy)                rematerialisation (``jax.checkpoint``) with a named policy

Pure functions (the maths each layer wraps; models compose these, e.g. ``x + attention(...)``)
    dense(p, x), conv(p, x, ...), conv_transpose, embed(p, ids), dropout(x, rate, key=, train=)
    layer_norm(p, x), rms_norm(p, x), group_norm(p, x, groups), batch_norm, init_norm(C)
    max_pool, avg_pool, global_avg_pool, global_max_pool, flatten(x, n)
    self_attention, init_attention, learned_positions, sinusoidal_positions
    time_embedding, init_time_embedding, res_block, init_res_block, upsample_nearest
    cross_attention, init_cross_attention, memory_kv

Write your own with :func:`deepcore.core.layer` (README: "Writing your own layer"). Each weighted layer names
its parameters' axes (``Layer.axes``; ``deepcore.layers.logical``: ``logical_axes``, ``constrain``), read by
``deepcore.train.sharding``.
"""
from deepcore.layers.basic import (Activation, Elu, Flatten, flatten, Gelu, GeluTanh, Identity, Lambda, LeakyRelu,
                                   LogSoftmax, Relu, Reshape, Sigmoid, Silu, Softmax, Softplus, Swish, Tanh)
from deepcore.layers.combinators import parallel, residual, serial
from deepcore.layers.compose import compose
from deepcore.layers.dense import Dense, dense
from deepcore.layers.dropout import Dropout, dropout
from deepcore.layers.embed import Embedding, embed, embed_attend
from deepcore.layers.norm import (BatchNorm, GroupNorm, LayerNorm, RMSNorm, batch_norm, group_norm, init_norm,
                                  layer_norm, rms_norm)
from deepcore.layers.conv import (Conv, Conv1D, Conv2D, Conv3D, ConvTranspose, ConvTranspose1D, ConvTranspose2D,
                                  ConvTranspose3D, conv, conv_transpose)
from deepcore.layers.pool import (AvgPool, AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool, GlobalMaxPool, MaxPool,
                                  MaxPool1D, MaxPool2D, MaxPool3D, avg_pool, global_avg_pool, global_max_pool,
                                  max_pool)
from deepcore.layers.recurrent import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SequenceInput, SimpleRNN,
                                      SimpleRNNCell, length_mask, scan_cell)
from deepcore.layers.attention import MultiHeadAttention, attention, init_attention, self_attention
from deepcore.layers.cross_attention import CrossAttention, cross_attention, init_cross_attention, memory_kv
from deepcore.layers.position import LearnedPositions, SinusoidalPositions, learned_positions, sinusoidal_positions
from deepcore.layers.remat import Remat
from deepcore.layers.phase_conv import PhaseConvTranspose
from deepcore.layers.spectral_norm import SpectralNorm, spectral_normalize
from deepcore.layers.time_embedding import TimeEmbedding, init_time_embedding, time_embedding, timestep_embedding
from deepcore.layers.unet import Downsample, ResBlock, Upsample, init_res_block, res_block, upsample_nearest

__all__ = [
    "Dense", "Embedding", "embed_attend",
    "Conv", "Conv1D", "Conv2D", "Conv3D", "ConvTranspose", "ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D",
    "MaxPool", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalAvgPool", "GlobalMaxPool",
    "BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm", "Dropout",
    "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "Bidirectional", "SequenceInput", "length_mask",
    "scan_cell",
    "MultiHeadAttention", "attention", "CrossAttention", "cross_attention", "init_cross_attention", "memory_kv",
    "LearnedPositions", "SinusoidalPositions",
    "Relu", "Sigmoid", "Tanh", "Gelu", "GeluTanh", "Silu", "Swish", "Softplus", "Elu", "Softmax", "LogSoftmax",
    "LeakyRelu", "Activation", "Lambda", "Identity", "Flatten", "Reshape",
    "serial", "parallel", "residual", "compose", "Remat",
    "PhaseConvTranspose", "SpectralNorm", "spectral_normalize",
    "dense", "conv", "conv_transpose", "embed", "dropout", "layer_norm", "rms_norm", "group_norm", "batch_norm",
    "init_norm", "max_pool", "avg_pool", "global_avg_pool", "global_max_pool", "flatten", "self_attention",
    "init_attention", "learned_positions", "sinusoidal_positions",
    "TimeEmbedding", "timestep_embedding", "time_embedding", "init_time_embedding",
    "ResBlock", "Downsample", "Upsample", "res_block", "init_res_block", "upsample_nearest",
]
