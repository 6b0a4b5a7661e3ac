"""Transformers: pre-LayerNorm blocks, stacks of them and a decoder-only language model (one import for all).

* :mod:`deepcore.models.transformer_stack`: :class:`BlockConfig`, ``block_init`` / ``block_apply`` (the block as
  ``x = x + dropout(attn(layer_norm(x))); x = x + dropout(mlp(layer_norm(x)))``), :func:`TransformerBlock`,
  ``stack_init`` / ``stack_apply`` / ``stack_cache`` and :func:`TransformerStack` (scanned or unrolled);
* :mod:`deepcore.models.stack_layout`: the two layouts of ``params["blocks"]`` (scanned ``(L, ...)`` leaves, or a
  list of ``L`` block dicts) and :func:`stack_layers` / :func:`unstack_layers` / :func:`to_scanned` /
  :func:`to_unscanned` between them;
* :mod:`deepcore.models.transformer_lm`: :class:`LMConfig`, ``lm_init`` / ``lm_apply`` / ``lm_cache`` and
  :func:`TransformerLM`; sampling from it is :mod:`deepcore.models.generate`.

Configuration lives in frozen dataclasses (:class:`BlockConfig`, :class:`LMConfig`), hashable so they can be
static arguments of ``jax.jit``; the layers wrap the ``*_apply`` functions, which also take a KV cache for
decoding. The scanned stack's default remat policy is ``transformer_stack.SCAN_POLICY`` (patch it there).
"""
from deepcore.models.stack_layout import stack_layers, to_scanned, to_unscanned, unstack_layers
from deepcore.models.transformer_lm import LMConfig, TransformerLM, lm_apply, lm_cache, lm_dtype, lm_init
from deepcore.models.transformer_stack import (NAMES, BlockConfig, TransformerBlock, TransformerStack, block_apply,
                                               block_init, gpt_init, mlp, stack_apply, stack_cache, stack_init)

__all__ = ["BlockConfig", "LMConfig", "block_init", "block_apply", "TransformerBlock", "stack_layers",
           "unstack_layers", "to_scanned", "to_unscanned", "stack_init", "stack_cache", "stack_apply",
           "TransformerStack", "lm_init", "lm_cache", "lm_apply", "TransformerLM", "gpt_init", "lm_dtype", "mlp",
           "NAMES"]
