"""deepcore: a pure-functional deep-learning research library on JAX."""
__version__ = "0.1.0"

from deepcore.core import Layer, ShapeError, Spec, as_spec, layer  # noqa: F401
