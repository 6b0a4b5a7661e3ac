"""Example configurations of every layer and family model.

Data, not machinery: each :class:`Case` says how to build a layer and what input to feed it. The
generic layer tests (``tests/layers/test_generic.py``) and ``python -m deepcore.gradcheck`` iterate
over :data:`LAYER_CASES` and :data:`MODEL_CASES`, so a new layer listed here gets every check;
:data:`FUNCTION_CASES` (losses, penalties: :class:`FunctionCase`) are gradient-checked too.
"""
from deepcore.catalog.case import Case, FunctionCase
from deepcore.catalog import functions as _functions
from deepcore.catalog import layers as _layers
from deepcore.catalog import rnn as _rnn
from deepcore.catalog import transformer as _transformer
from deepcore.catalog import vision as _vision

LAYER_CASES = list(_layers.CASES)
MODEL_CASES = []
FUNCTION_CASES = list(_functions.CASES)
LAYER_CASES += _rnn.LAYER_CASES
MODEL_CASES += _rnn.MODEL_CASES
LAYER_CASES += _transformer.LAYER_CASES
MODEL_CASES += _transformer.MODEL_CASES
MODEL_CASES += _vision.MODEL_CASES

__all__ = ["Case", "FunctionCase", "LAYER_CASES", "MODEL_CASES", "FUNCTION_CASES"]
from deepcore.catalog import gan as _gan  # noqa: E402
LAYER_CASES += _gan.LAYER_CASES
MODEL_CASES += _gan.MODEL_CASES
FUNCTION_CASES += _gan.FUNCTION_CASES
from deepcore.catalog import forecast as _forecast  # noqa: E402
LAYER_CASES += _forecast.LAYER_CASES
MODEL_CASES += _forecast.MODEL_CASES
FUNCTION_CASES += _forecast.FUNCTION_CASES
from deepcore.catalog import diffusion as _diffusion  # noqa: E402
LAYER_CASES += _diffusion.LAYER_CASES
MODEL_CASES += _diffusion.MODEL_CASES
from deepcore.catalog import vae as _vae  # noqa: E402
LAYER_CASES += _vae.LAYER_CASES
MODEL_CASES += _vae.MODEL_CASES
FUNCTION_CASES += _vae.FUNCTION_CASES
from deepcore.catalog import seq2seq as _seq2seq  # noqa: E402
LAYER_CASES += _seq2seq.LAYER_CASES
FUNCTION_CASES += _seq2seq.FUNCTION_CASES
