"""Suite-wide settings: the whole suite runs under strict dtype promotion (as Equinox's does), so deepcore's dtype
policy is proven rather than rescued by implicit promotion: a float32 layer that silently became float64, or an
int that silently became a float, fails here. Third-party code that relies on implicit promotion (optax's bias
correction, ``jax.nn.dot_product_attention``) runs inside ``deepcore.core.implicit_promotion()``.

Rank promotion raises too: an array of lower rank never silently gains leading axes, so every broadcast in
deepcore states its shapes (``b[None, :]``, ``jnp.expand_dims``, ``jnp.broadcast_to``); a ``(F,)`` vector meant
for one axis cannot quietly line up against another (BUILD_NOTES.md, issue 18)."""
import os
import shutil
import tempfile

import jax

import _compile_cache

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    """The session's shared compilation cache for script subprocesses (:mod:`_compile_cache`), made once by the
    first process (xdist's workers inherit it) and removed by that process at the end."""
    if not os.environ.get(_compile_cache.VAR):
        os.environ[_compile_cache.VAR] = config._deepcore_compile_cache = tempfile.mkdtemp(prefix="deepcore-compile-")


def pytest_unconfigure(config):
    made = getattr(config, "_deepcore_compile_cache", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(_compile_cache.VAR, None)
