"""Datasets and input pipelines: TFDS names (offline-capable), in-memory batching, JAX augmentations."""
