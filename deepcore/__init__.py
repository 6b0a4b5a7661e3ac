"""deepcore: a pure-functional deep-learning research library on JAX.

Light modules are imported here; ``deepcore.train``, ``deepcore.data``, ``deepcore.gradcheck``,
``deepcore.models`` and ``deepcore.interpret`` are imported on demand (they pull in optax/orbax/TFDS).
"""
__version__ = "0.1.0"

from deepcore import activations, initializers, layers, losses, metrics, tree  # noqa: F401
from deepcore.core import Layer, ShapeError, Spec, as_spec, layer  # noqa: F401
from deepcore.tree import freeze, param_count, summary  # noqa: F401
