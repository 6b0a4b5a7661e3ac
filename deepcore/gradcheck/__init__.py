"""Numerical gradient checking: which leaf, which element, and by how much a derivative is wrong.

``check_grads(f, args, argnums)`` returns a :class:`Report`; ``assert_grads_ok`` raises with its table;
``check_layer(layer, spec)`` checks a deepcore layer's parameters and input in train and eval mode.
``check_nnx``, ``check_linen``, ``check_equinox`` check Flax and Equinox modules through their own functional
split; ``assert_model_grads(model, x)`` is the one-line test. ``python -m deepcore.gradcheck`` checks every case
in :mod:`deepcore.catalog`.
"""
from deepcore.gradcheck.checker import MODES, assert_grads_ok, check_grads
from deepcore.gradcheck.report import LeafResult, Report

__all__ = ["MODES", "check_grads", "assert_grads_ok", "Report", "LeafResult"]
from deepcore.gradcheck.cases import check_case, check_layer, layer_function

__all__ += ["check_layer", "check_case", "layer_function"]
from deepcore.gradcheck.adapters import (assert_model_grads, check_equinox, check_linen, check_model,
                                         check_nnx)

__all__ += ["check_nnx", "check_linen", "check_equinox", "check_model", "assert_model_grads"]
