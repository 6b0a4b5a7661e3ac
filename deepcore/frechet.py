"""Moved to :mod:`deepcore.gan.frechet` (beside the GAN code); re-exported here so old imports work."""
from deepcore.gan.frechet import feature_stats, frechet_distance, sqrtm_psd  # noqa: F401

__all__ = ["feature_stats", "frechet_distance", "sqrtm_psd"]
