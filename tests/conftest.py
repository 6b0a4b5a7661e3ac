"""Suite-wide settings: the whole suite runs under strict dtype promotion (as Equinox's does), so deepcore's dtype
policy is proven rather than rescued by implicit promotion: a float32 layer that silently became float64, or an
int that silently became a float, fails here. Third-party code that relies on implicit promotion (optax's bias
correction, ``jax.nn.dot_product_attention``) runs inside ``deepcore.core.implicit_promotion()``.

Rank promotion stays NumPy's: deepcore's layers are batched functions whose ``(F,)`` biases and scales broadcast
over the leading axes (``x @ w + b``), which ``jax_numpy_rank_promotion="raise"`` would turn into explicit
``broadcast_to`` calls in every layer (BUILD_NOTES.md, issue 18)."""
import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
