"""Rematerialisation: recompute a layer's activations in the backward pass instead of keeping them.

``Remat(layer, policy=...)`` wraps any layer (a block, a stack, a whole model) in ``jax.checkpoint``; the
policy says which intermediate values the forward pass keeps for the backward pass:

* ``"nothing"``: keep only the layer's inputs, recompute everything (least memory, one extra forward);
* ``"dots"``: keep every matmul output (``dot_general``), recompute the elementwise work (norms, GELU,
  softmax) from them, which XLA fuses into the backward kernels;
* ``"dots_no_batch"``: keep the matmuls against weights but not attention's batched ``q k^T`` and
  ``p v`` (the ``(T, S)``-sized ones);
* ``"names:a,b"``: keep the values tagged ``jax.ad_checkpoint.checkpoint_name(x, "a")`` (the transformer
  block tags ``NAMES``);
* ``"offload:a,b"``: those named values moved to host memory and back (GPU/TPU); on a CPU, where device
  and host memory are one, they are kept as in ``"names:a,b"``;
* ``"everything"``: keep everything (what no remat does, inside a ``jax.checkpoint`` boundary);
* or any ``jax.checkpoint_policies`` function.

:func:`remat_policy` turns a name into the policy function. ``Remat(layer, None)`` is the layer itself.
"""
from typing import Callable, Optional, Union

import jax

from deepcore.core import Layer, layer

cp = jax.checkpoint_policies
SIMPLE = {"nothing": cp.nothing_saveable, "dots": cp.dots_saveable,
          "dots_no_batch": cp.dots_with_no_batch_dims_saveable, "everything": cp.everything_saveable}
POLICIES = tuple(SIMPLE) + ("names:<a,b>", "offload:<a,b>")
Policy = Union[str, Callable, None]


def remat_policy(policy: Policy, backend: Optional[str] = None) -> Optional[Callable]:
    """A policy name (see module doc) -> its ``jax.checkpoint`` policy function; a function is returned as is.
    ``backend`` (default ``jax.default_backend()``) decides whether ``"offload:..."`` can offload."""
    if policy is None or callable(policy):
        return policy
    if policy in SIMPLE:
        return SIMPLE[policy]
    kind, _, names = str(policy).partition(":")
    names = [n for n in names.split(",") if n]
    if kind == "names" and names:
        return cp.save_only_these_names(*names)
    if kind == "offload" and names:
        if (backend or jax.default_backend()) == "cpu":
            return cp.save_only_these_names(*names)
        return cp.save_and_offload_only_these_names(names_which_can_be_saved=[], names_which_can_be_offloaded=names,
                                                    offload_src="device", offload_dst="pinned_host")
    raise ValueError(f"remat policy must be one of {POLICIES} or a jax.checkpoint_policies function, got {policy!r}")


def checkpointed(fn: Callable, policy: Policy, *, static_argnums=()) -> Callable:
    """``fn`` under ``jax.checkpoint`` with the named ``policy``; ``fn`` itself for ``policy=None``."""
    if policy is None:
        return fn
    return jax.checkpoint(fn, policy=remat_policy(policy), static_argnums=static_argnums)


def Remat(inner: Layer, policy: Policy = "nothing") -> Layer:
    """``inner`` with its activations rematerialised under ``policy``; same parameters, state and outputs."""
    remat_policy(policy)   # an unknown name fails here, at construction

    def apply(params, state, x, *, key=None, train=False):
        def run(params, state, x, key):
            return inner.apply(params, state, x, key=key, train=train)

        return checkpointed(run, policy)(params, state, x, key)

    return layer(f"remat_{inner.name}", inner.init, apply, children=(("inner", inner),), axes=inner.axes)


__all__ = ["Remat", "remat_policy", "checkpointed", "POLICIES"]
