"""Example configurations of every layer and family model.

Data, not machinery: each :class:`Case` says how to build a layer and what input to feed it. The
generic layer tests (``tests/layers/test_generic.py``) and ``python -m deepcore.gradcheck`` iterate
over :data:`LAYER_CASES` and :data:`MODEL_CASES`, so a new layer listed here gets every check.
"""
from deepcore.catalog.case import Case
from deepcore.catalog import layers as _layers

LAYER_CASES = list(_layers.CASES)
MODEL_CASES = []

__all__ = ["Case", "LAYER_CASES", "MODEL_CASES"]
