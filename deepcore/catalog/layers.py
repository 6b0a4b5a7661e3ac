"""Cases for every layer in :mod:`deepcore.layers` (one or more configurations each)."""
from deepcore import layers as L
from deepcore.catalog.case import Case


def _gated_skip(call, x):
    """compose's example: a gated projection plus a skip through another child."""
    h = call("proj", x)
    return h * L.Sigmoid.apply({}, {}, call("gate", x))[0] + call("skip", h)


CASES = [
    Case("dense", lambda: L.Dense(5), (3, 4)),
    Case("dense_nobias", lambda: L.Dense(5, use_bias=False), (3, 2, 4)),
    Case("serial_mlp", lambda: L.serial(L.Dense(6), L.Tanh, L.Dense(3)), (3, 4)),
    Case("parallel_concat", lambda: L.parallel(L.Dense(3), L.Dense(2), merge="concat"), (3, 4)),
    Case("parallel_sum", lambda: L.parallel(L.Dense(3), L.Dense(3), merge="sum"), (3, 4)),
    Case("parallel_product_glu", lambda: L.parallel(L.Dense(3), L.serial(L.Dense(3), L.Sigmoid), merge="product"),
         (3, 4)),
    Case("compose_gated_skip", lambda: L.compose("gated_skip", {"proj": L.Dense(3), "gate": L.Dense(3),
                                                                "skip": L.Dense(3)}, _gated_skip), (3, 4)),
    Case("residual", lambda: L.residual(L.serial(L.Dense(4), L.Tanh)), (3, 4)),
    Case("relu", lambda: L.Relu, (3, 5), smooth=False),
    Case("leaky_relu", lambda: L.LeakyRelu(0.2), (3, 5), smooth=False),
    Case("elu", lambda: L.Elu, (3, 5), smooth=False),
    Case("gelu", lambda: L.Gelu, (3, 5)),
    Case("gelu_tanh", lambda: L.GeluTanh, (3, 5)),
    Case("silu", lambda: L.Silu, (3, 5)),
    Case("sigmoid", lambda: L.Sigmoid, (3, 5)),
    Case("tanh", lambda: L.Tanh, (3, 5)),
    Case("softplus", lambda: L.Softplus, (3, 5)),
    Case("softmax", lambda: L.Softmax, (3, 5)),
    Case("log_softmax", lambda: L.LogSoftmax, (3, 5)),
    # Flatten/Reshape count dims from the front (start_dim=1 keeps a batch dim), so they are not per-example
    Case("flatten", lambda: L.Flatten(), (3, 2, 2), batch_axis=None),
    Case("reshape", lambda: L.Reshape((2, 2)), (3, 4), batch_axis=None),
    Case("identity", lambda: L.Identity, (3, 4)),
    Case("lambda", lambda: L.Lambda(lambda x: x * x, "square"), (3, 4)),
    # --- normalisation. Cases tagged "axis_name=NAME" must run train-mode applies where NAME is bound (the
    # generic tests bind it with a size-1 vmap for batched calls and vmap over it for per-example calls).
    Case("layer_norm", lambda: L.LayerNorm(), (3, 5)),
    Case("layer_norm_plain", lambda: L.LayerNorm(use_scale=False, use_bias=False, epsilon=1e-6), (2, 3, 4)),
    Case("rms_norm", lambda: L.RMSNorm(), (3, 5)),
    Case("group_norm", lambda: L.GroupNorm(2), (2, 3, 3, 4)),
    Case("group_norm_1d", lambda: L.GroupNorm(3, spatial_rank=1, use_bias=False), (2, 4, 6)),
    Case("batch_norm", lambda: L.BatchNorm(), (4, 2, 2, 3), stateful=True, batch_axis=None),
    Case("batch_norm_axis_name", lambda: L.BatchNorm(axis_name="batch", momentum=0.9), (4, 3), stateful=True,
         tags=("axis_name=batch",)),
    # --- dropout, embedding
    Case("dropout", lambda: L.Dropout(0.5), (4, 6), stochastic=True),
    Case("dropout_channels", lambda: L.Dropout(0.25, broadcast_dims=(-2, -3)), (2, 3, 3, 4), stochastic=True),
    Case("embedding", lambda: L.Embedding(7, 4), (2, 5), int_max=7),
    # --- convolutions: every rank, strides 1/2, SAME/VALID/explicit padding, dilation, feature groups
    Case("conv1d", lambda: L.Conv1D(3, 3), (2, 6, 2)),
    Case("conv1d_stride2_valid", lambda: L.Conv1D(3, 3, strides=2, padding="VALID"), (2, 7, 2)),
    Case("conv2d", lambda: L.Conv2D(3, 3), (2, 5, 5, 2)),
    Case("conv2d_stride2_valid", lambda: L.Conv2D(4, (3, 2), strides=2, padding="VALID"), (2, 6, 5, 2)),
    Case("conv2d_stride2_same", lambda: L.Conv2D(2, 3, strides=(2, 1)), (2, 5, 4, 1)),
    Case("conv2d_dilated", lambda: L.Conv2D(3, 3, dilation=2, padding=1), (2, 6, 6, 2)),
    Case("conv2d_groups", lambda: L.Conv2D(4, 3, groups=2), (2, 4, 4, 4)),
    Case("conv2d_depthwise", lambda: L.Conv2D(4, 2, groups=4, use_bias=False, padding=((1, 0), (0, 1))),
         (2, 3, 3, 4)),
    Case("conv3d", lambda: L.Conv3D(2, 2), (2, 3, 3, 3, 2)),
    Case("conv3d_stride2", lambda: L.Conv3D(2, 3, strides=2, padding="VALID"), (1, 5, 5, 5, 1)),
    Case("conv_transpose1d", lambda: L.ConvTranspose1D(3, 3, strides=2), (2, 4, 2)),
    Case("conv_transpose1d_valid", lambda: L.ConvTranspose1D(2, 3, padding="VALID"), (2, 4, 2)),
    Case("conv_transpose2d", lambda: L.ConvTranspose2D(3, 3, strides=2), (2, 3, 3, 2)),
    Case("conv_transpose2d_valid", lambda: L.ConvTranspose2D(2, (2, 3), strides=2, padding="VALID"), (2, 3, 3, 2)),
    Case("conv_transpose2d_dilated", lambda: L.ConvTranspose2D(2, 2, dilation=2), (2, 3, 3, 1)),
    Case("conv_transpose3d", lambda: L.ConvTranspose3D(2, 2, strides=2), (1, 2, 2, 2, 2)),
    # --- pooling (max has kinks where a window's top two values swap)
    Case("max_pool1d", lambda: L.MaxPool1D(3, strides=1, padding="SAME"), (2, 5, 3), smooth=False),
    Case("max_pool2d", lambda: L.MaxPool2D(2), (2, 4, 5, 3), smooth=False),
    Case("max_pool3d", lambda: L.MaxPool3D(2), (1, 4, 4, 4, 2), smooth=False),
    Case("avg_pool2d", lambda: L.AvgPool2D(2), (2, 4, 4, 3)),
    Case("avg_pool2d_same", lambda: L.AvgPool2D(3, strides=2, padding="SAME"), (2, 5, 5, 2)),
    Case("avg_pool1d_include_pad", lambda: L.AvgPool1D(2, padding=1, count_include_pad=True), (2, 5, 3)),
    Case("avg_pool3d", lambda: L.AvgPool3D((1, 2, 2)), (1, 2, 4, 4, 2)),
    Case("global_avg_pool", lambda: L.GlobalAvgPool(), (2, 3, 3, 4)),
    Case("global_avg_pool1d", lambda: L.GlobalAvgPool(1, keepdims=True), (2, 5, 3)),
    Case("global_max_pool", lambda: L.GlobalMaxPool(), (2, 3, 3, 4), smooth=False),
    # --- small stacks that mix the above (state and keys threaded through combinators)
    Case("cnn_block", lambda: L.serial(L.Conv2D(4, 3), L.GroupNorm(2), L.Relu, L.MaxPool2D(2), L.GlobalAvgPool(),
                                       L.Dense(3)), (2, 4, 4, 1), smooth=False),
    Case("mlp_bn_dropout", lambda: L.serial(L.Dense(4), L.BatchNorm(axis_name="batch"), L.Tanh, L.Dropout(0.3),
                                            L.Dense(2)), (4, 3), stochastic=True, stateful=True,
         tags=("axis_name=batch",)),
]
