"""The README's "Writing your own layer" examples run as written and do what the text says."""
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from deepcore import layers as L
from deepcore.gradcheck import check_layer

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_writing_your_own_layer_examples_run():
    with jax.numpy_rank_promotion("allow"):   # user code as a reader writes it (``x * s`` for s: (features,));
        _run_examples()                       # the suite's rank rule is for deepcore's own code


def _run_examples():
    section = README[README.index("### Writing your own layer"):README.index("## Checking gradients")]
    ns = {"L": L, "jax": jax, "jnp": jnp, "check_layer": check_layer}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        exec(block, ns)  # the Scale block also gradient-checks its layer
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype(np.float32)
    for lay, shape, out in [(ns["GLU"](4), (2, 6), (2, 4)), (ns["SE"](4, 2), x.shape, x.shape),
                            (ns["GatedSkip"](3), (2, 6), (2, 3)), (ns["Scale"](8), (4, 8), (4, 8))]:
        assert lay.init(jax.random.PRNGKey(0), shape)[0].shape == out, lay.name
    with jax.enable_x64(True):  # float64 parameters follow a float64 input
        _, p, s = ns["Scale"](4).init(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((2, 4), jnp.float64))
        assert p["s"].dtype == jnp.float64
    y, _ = ns["Scale"](4).apply({"s": jnp.arange(4.0)}, {}, jnp.ones((2, 4), jnp.bfloat16))
    assert y.dtype == jnp.bfloat16 and np.allclose(np.asarray(y, np.float32), [[0, 1, 2, 3]] * 2)
