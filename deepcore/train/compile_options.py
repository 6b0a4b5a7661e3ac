"""Default XLA compiler options for a step, chosen per compiled program by a stated rule.

The rule (:func:`choose`): on a CPU, a program that contains a convolution is compiled with XLA:CPU's
YNNPACK library fusions for dots, elementwise ops and reductions (:data:`YNN_FUSION`); any other program
(and every program on a GPU or TPU) with XLA's defaults. Measured on an AMD EPYC CPU without AVX-512, the
options made the W2 CNN step 4-5x faster (1,939-1,978 ms -> 386-454 ms) and the W4 transformer step about
13% slower, hence the convolution test.

:func:`auto` wraps a jitted function so that each input signature is lowered, judged by the rule and compiled
with the chosen options; the choice is kept in ``.choices`` (signature -> ``{"options", "reason"}``) and
logged to the ``deepcore`` logger. Step builders use it when given ``compiler_options=None``; explicit
options (``{}``: none) override the rule.
"""
import logging
from typing import Callable, Optional, Tuple

import jax

YNN_FUSION = {"xla_cpu_experimental_ynn_fusion_type":
              "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"}
log = logging.getLogger("deepcore")


def choose(lowered, backend: Optional[str] = None) -> Tuple[dict, str]:
    """``(options, reason)`` for a ``jax.stages.Lowered`` program on ``backend`` (default: JAX's)."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}, f"{backend}: XLA's defaults"
    if "convolution" in lowered.as_text():
        return dict(YNN_FUSION), "cpu, the program has convolutions: YNNPACK fusions for dots, elementwise, reduce"
    return {}, "cpu, no convolution in the program: XLA's defaults"


class _Auto:
    """A jitted function compiled once per input signature with the options :func:`choose` picks."""

    def __init__(self, jitted):
        self.jitted, self._cache, self.choices = jitted, {}, {}

    @staticmethod
    def _signature(args):
        leaves, treedef = jax.tree.flatten(args)
        return treedef, tuple((tuple(a.shape), str(a.dtype), getattr(a, "sharding", None))
                              if hasattr(a, "shape") else ("py", a) for a in leaves)

    def __call__(self, *args):
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args)):
            return self.jitted(*args)   # traced from outside (make_jaxpr, vmap, an enclosing jit): plain jit
        sig = self._signature(args)
        fn = self._cache.get(sig)
        if fn is None:
            lowered = self.jitted.lower(*args)
            options, reason = choose(lowered)
            try:
                fn = lowered.compile(compiler_options=options) if options else lowered.compile()
            except Exception as e:   # an XLA without these options: its defaults, and say so
                fn, options = lowered.compile(), {}
                reason = f"{reason}; not available here ({type(e).__name__}), XLA's defaults used"
            self._cache[sig], self.choices[sig] = fn, {"options": options, "reason": reason}
            log.info("compile options for %s: %s (%s)", getattr(self.jitted, "__name__", "step"), options, reason)
        return fn(*args)

    def lower(self, *args):
        return self.jitted.lower(*args)

    @property
    def choice(self) -> Optional[dict]:
        """The choice for the most recently compiled signature (None before the first call)."""
        return next(reversed(self.choices.values()), None)


def auto(jitted: Callable) -> Callable:
    """``jitted`` compiled per signature with the rule's options on a CPU; ``jitted`` itself elsewhere."""
    return _Auto(jitted) if jax.default_backend() == "cpu" else jitted


__all__ = ["YNN_FUSION", "choose", "auto"]
