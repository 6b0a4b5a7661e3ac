"""Suite-wide settings: the whole suite runs under strict dtype promotion (as Equinox's does), so deepcore's dtype
policy is proven rather than rescued by implicit promotion: a float32 layer that silently became float64, or an
int that silently became a float, fails here. Third-party code that relies on implicit promotion (optax's bias
correction, ``jax.nn.dot_product_attention``) runs inside ``deepcore.core.implicit_promotion()``.

Rank promotion raises too: an array of lower rank never silently gains leading axes, so every broadcast in
deepcore states its shapes (``b[None, :]``, ``jnp.expand_dims``, ``jnp.broadcast_to``); a ``(F,)`` vector meant
for one axis cannot quietly line up against another (BUILD_NOTES.md, issue 18)."""
import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
