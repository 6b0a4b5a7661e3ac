"""Example configurations of every layer and family model.

Data, not machinery: each :class:`Case` says how to build a layer and what input to feed it. The
generic layer tests (``tests/layers/test_generic.py``) and ``python -m deepcore.gradcheck`` iterate
over :data:`LAYER_CASES` and :data:`MODEL_CASES`, so a new layer listed here gets every check;
:data:`FUNCTION_CASES` (losses, penalties: :class:`FunctionCase`) are gradient-checked too.
"""
from deepcore.catalog.case import Case, FunctionCase
from deepcore.catalog import functions as _functions
from deepcore.catalog import layers as _layers

LAYER_CASES = list(_layers.CASES)
MODEL_CASES = []
FUNCTION_CASES = list(_functions.CASES)
__all__ = ["Case", "FunctionCase", "LAYER_CASES", "MODEL_CASES", "FUNCTION_CASES"]

# one module per family; each may list LAYER_CASES, MODEL_CASES and FUNCTION_CASES
from deepcore.catalog import diffusion, forecast, gan, rnn, seq2seq, transformer, vae, vision  # noqa: E402

for _family in (rnn, transformer, vision, gan, forecast, diffusion, vae, seq2seq):
    LAYER_CASES += getattr(_family, "LAYER_CASES", [])
    MODEL_CASES += getattr(_family, "MODEL_CASES", [])
    FUNCTION_CASES += getattr(_family, "FUNCTION_CASES", [])
