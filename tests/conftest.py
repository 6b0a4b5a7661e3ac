"""Suite-wide settings: the whole suite runs under strict dtype promotion and rank-promotion errors (as Equinox
does), so deepcore's dtype policy is proven rather than rescued by implicit promotion: a float32 layer that silently
became float64 (or an int that silently became a float) fails here."""
import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
# jax.config.update("jax_numpy_rank_promotion", "raise")
