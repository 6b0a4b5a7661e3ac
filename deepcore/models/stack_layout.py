"""The two layouts of a transformer stack's ``blocks`` and the converters between them.

* scanned: one block dict whose leaves have a leading layer axis ``(L, ...)`` (run with ``lax.scan``);
* unrolled: a list of ``L`` block dicts (run by a Python loop).

Indexing stacked parameters inside a Python loop (``blocks["w"][i]``) is the slow mix of both and is never done.
"""
import jax
import jax.numpy as jnp


def is_scanned(blocks) -> bool:
    """True for the stacked layout (a dict of ``(L, ...)`` leaves), False for a list of block dicts."""
    return not isinstance(blocks, (list, tuple))


def depth(blocks) -> int:
    """The number of blocks ``L`` in either layout."""
    return jax.tree.leaves(blocks)[0].shape[0] if is_scanned(blocks) else len(blocks)


def stack_layers(blocks: list) -> dict:
    """A list of ``L`` same-shaped block dicts -> one dict with leaves ``(L, ...)`` (for ``lax.scan``)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *blocks)


def unstack_layers(stacked: dict) -> list:
    """Inverse of :func:`stack_layers`: a dict with leaves ``(L, ...)`` -> a list of ``L`` block dicts."""
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(depth(stacked))]


def to_scanned(params: dict) -> dict:
    """A model's params with ``params["blocks"]`` in the scanned layout (unchanged if already)."""
    blocks = params["blocks"]
    return {**params, "blocks": blocks if is_scanned(blocks) else stack_layers(blocks)}


def to_unscanned(params: dict) -> dict:
    """A model's params with ``params["blocks"]`` as a list of per-layer dicts (unchanged if already)."""
    blocks = params["blocks"]
    return {**params, "blocks": unstack_layers(blocks) if is_scanned(blocks) else list(blocks)}


__all__ = ["is_scanned", "depth", "stack_layers", "unstack_layers", "to_scanned", "to_unscanned"]
