"""The benchmark's baselines are other libraries' and hand-written idiomatic code (pure JAX, Flax, Equinox), which
broadcasts implicitly as most JAX code does; the suite's rank-promotion rule (tests/conftest.py) is for deepcore's
own code, so the benchmark tests allow it."""
import jax
import pytest


@pytest.fixture(autouse=True)
def _allow_rank_promotion():
    with jax.numpy_rank_promotion("allow"):
        yield
