"""Weight initialisers: ``init(key, shape, dtype) -> array``.

These are ``jax.nn.initializers`` under the usual names. Fans follow the kernel layouts used by
deepcore: Dense ``(in, out)``, Conv ``(*spatial, in/groups, out)``, so the receptive field counts
towards fan-in and fan-out exactly as in Glorot & Bengio (2010) and He et al. (2015).
"""
import jax.nn.initializers as _ji

zeros = _ji.zeros
ones = _ji.ones
constant = _ji.constant                    # constant(0.1)
normal = _ji.normal                        # normal(stddev=1e-2)
uniform = _ji.uniform                      # uniform(scale=1e-2), on [0, scale)
truncated_normal = _ji.truncated_normal    # truncated_normal(stddev=1e-2), cut at +-2 stddev
orthogonal = _ji.orthogonal                # orthogonal(scale=1.0)
variance_scaling = _ji.variance_scaling    # variance_scaling(scale, mode, distribution)

glorot_uniform = xavier_uniform = _ji.glorot_uniform()
glorot_normal = xavier_normal = _ji.glorot_normal()
he_uniform = kaiming_uniform = _ji.he_uniform()
he_normal = kaiming_normal = _ji.he_normal()
lecun_uniform = _ji.lecun_uniform()
lecun_normal = _ji.lecun_normal()

__all__ = [
    "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "orthogonal", "variance_scaling",
    "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
    "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal",
]
