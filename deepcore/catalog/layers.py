"""Cases for every layer in :mod:`deepcore.layers` (one or more configurations each)."""
from deepcore import layers as L
from deepcore.catalog.case import Case

CASES = [
    Case("dense", lambda: L.Dense(5), (3, 4)),
    Case("dense_nobias", lambda: L.Dense(5, use_bias=False), (3, 2, 4)),
    Case("serial_mlp", lambda: L.serial(L.Dense(6), L.Tanh, L.Dense(3)), (3, 4)),
    Case("parallel_concat", lambda: L.parallel(L.Dense(3), L.Dense(2), merge="concat"), (3, 4)),
    Case("parallel_sum", lambda: L.parallel(L.Dense(3), L.Dense(3), merge="sum"), (3, 4)),
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
    Case("flatten", lambda: L.Flatten(), (3, 2, 2)),
    Case("reshape", lambda: L.Reshape((2, 2)), (3, 4)),
    Case("identity", lambda: L.Identity, (3, 4)),
    Case("lambda", lambda: L.Lambda(lambda x: x * x, "square"), (3, 4)),
]
