"""Flax NNX, Flax linen and Equinox models checked through their own functional split; bugs planted inside
them are caught at the module's own parameter path and element; the one-line pytest helper."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.gradcheck import (assert_model_grads, check_equinox, check_grads, check_linen, check_nnx)
from deepcore.gradcheck.progress import Progress

X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)


def scaled_element_matmul(i, j, factor):
    """``x @ w`` whose weight gradient is wrong at element ``[i, j]`` only (a planted bug)."""

    @jax.custom_vjp
    def mm(x, w):
        return x @ w

    def bwd(res, g):
        x, w = res
        return g @ w.T, (x.T @ g).at[i, j].multiply(factor)

    mm.defvjp(lambda x, w: (x @ w, (x, w)), bwd)
    return mm


def nnx_model(matmul=jnp.matmul):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(3, 5, rngs=rngs)
            self.bn = nnx.BatchNorm(5, rngs=rngs)
            self.drop = nnx.Dropout(0.3, rngs=rngs)
            self.out = nnx.Param(jax.random.normal(rngs.params(), (5, 2)) / 2)

        def __call__(self, x):
            return matmul(jnp.tanh(self.drop(self.bn(self.lin(x)))), self.out[...])

    return Net(nnx.Rngs(0))


def test_nnx_model_passes_in_train_and_eval_mode():
    r = check_nnx(nnx_model(), X)
    assert r.ok, r.table()
    assert {res.mode for res in r.results} >= {"eval fast/rev", "train fast/rev", "train fwd-rev"}
    assert {res.path for res in r.results} >= {"params/lin/kernel", "params/bn/scale", "params/out", "x"}


def test_bug_planted_in_an_nnx_model_is_located_at_its_parameter_path():
    r = check_nnx(nnx_model(scaled_element_matmul(3, 1, 1.02)), X, train=(False,))
    assert {res.path for res in r.failures()} == {"params/out"}
    assert r.result("eval fast/rev", "params/out").where == "params/out[3,1]"
    assert r.result("eval fast/fwd", "params/out").verdict == "n/a"   # no forward mode through a custom_vjp
    with pytest.raises(AssertionError, match=r"params/out\[3,1\]"):
        assert_model_grads(nnx_model(scaled_element_matmul(3, 1, 1.02)), X, train=(False,))


def test_linen_model_passes_and_names_its_paths():
    from flax import linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.BatchNorm(use_running_average=not train)(nn.Dense(5)(x))
            return nn.Dense(2)(nn.Dropout(0.3, deterministic=not train)(jnp.tanh(x)))

    net = Net()
    variables = net.init(jax.random.PRNGKey(0), X, train=False)
    r = check_linen(net, variables, X, mode_kwargs=lambda t: {"train": t})
    assert r.ok, r.table()
    assert {res.path for res in r.results} >= {"params/Dense_0/kernel", "params/BatchNorm_0/scale", "x"}
    assert {res.mode.split()[0] for res in r.results} == {"eval", "train"}


def eqx_model(bias_bug=False):
    eqx = pytest.importorskip("equinox")

    @jax.custom_vjp
    def add_bias(y, b):
        return y + b[None, :]

    add_bias.defvjp(lambda y, b: (y + b[None, :], None), lambda _, g: (g, (2.0 if bias_bug else 1.0) * g.sum(0)))

    class Net(eqx.Module):
        lin: eqx.nn.Linear
        drop: eqx.nn.Dropout
        head: eqx.nn.Linear
        b: jax.Array

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.lin, self.head = eqx.nn.Linear(3, 5, key=k1), eqx.nn.Linear(5, 2, use_bias=False, key=k2)
            self.drop = eqx.nn.Dropout(0.3)
            self.b = jnp.arange(2.0)

        def __call__(self, x, *, key=None):
            h = self.drop(jnp.tanh(jax.vmap(self.lin)(x)), key=key)
            return add_bias(jax.vmap(self.head)(h), self.b)

    return Net(jax.random.PRNGKey(0))


def test_equinox_model_passes_in_train_and_eval_mode():
    r = check_equinox(eqx_model(), X)
    assert r.ok, r.table()
    assert {res.path for res in r.results} >= {"params/lin/weight", "params/lin/bias", "params/head/weight", "x"}
    assert {res.mode.split()[0] for res in r.results} == {"eval", "train"}


def test_bug_planted_in_an_equinox_model_is_caught_at_the_bias_only():
    r = check_equinox(eqx_model(bias_bug=True), X, train=(True,))
    assert {res.path for res in r.failures()} == {"params/b"}
    assert r.result("train fast/rev", "params/b").where.startswith("params/b[")
    assert_model_grads(eqx_model(), X, train=(False,))   # the one-line helper passes the correct model


@pytest.mark.parametrize("argnums", [1, -2, (0, 3)])
def test_argnums_outside_the_arguments_refused_in_one_line(argnums):
    with pytest.raises(ValueError, match=r"argnums must be in \[0, 1\) .* got (1|-2|3)$") as e:
        check_grads(lambda x: jnp.sum(x ** 2), (np.ones(3),), argnums)
    assert "\n" not in str(e.value)


def test_progress_names_mode_leaf_and_count_and_short_checks_stay_silent(capsys):
    buf = io.StringIO()
    check_grads(lambda p: jnp.sum(jnp.tanh(p["w"]) * p["b"]), {"w": np.ones(3), "b": np.ones(3)},
                argnames=("params",), modes=("fast", "fwd-rev"),
                progress=Progress("tiny", 4, stream=buf, after=0.0, every=0.0))
    text = buf.getvalue()
    assert "gradcheck tiny: fast" in text and "params/" in text and "/4 leaf checks" in text and "done in" in text
    check_grads(lambda x: jnp.sum(x ** 2), np.ones(3), modes=("fast",))
    assert capsys.readouterr().err == ""


def test_compact_report_lists_the_failure_then_one_line_per_mode():
    mm = scaled_element_matmul(1, 2, 1.05)
    w = np.random.default_rng(1).standard_normal((3, 4))
    r = check_grads(lambda w, x: jnp.sum(jnp.sin(mm(x, w))), (w, X.astype(np.float64)), (0, 1),
                    argnames=("w", "x"), modes=("fast", "fwd-rev"))
    lines = str(r).splitlines()
    assert lines[0].endswith("FAILED") and lines[1].startswith("  FAIL fast/rev w[1,2]")
    assert [ln.split()[0] for ln in lines[-3:]] == ["fast/rev", "fast/fwd", "fwd-rev"]
    assert len(r.table().splitlines()) > len(lines)   # the full table has a row per leaf and mode
