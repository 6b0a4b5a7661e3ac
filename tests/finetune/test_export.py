"""safetensors export/import (bit-exact, lazy, sharded, one-line mismatches) and jax.export of apply."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.finetune import export
from deepcore.models.transformer import TransformerLM

LM = dict(vocab_size=11, d_model=16, num_layers=2, num_heads=2, max_len=8)


def params_of(scan=True, dtype=jnp.float32):
    return TransformerLM(**LM, scan=scan, param_dtype=dtype).init(jax.random.PRNGKey(0),
                                                                  jax.ShapeDtypeStruct((2, 8), jnp.int32))[1]


@pytest.mark.parametrize("scan,dtype", [(True, jnp.float32), (False, jnp.float32), (True, jnp.bfloat16)])
def test_safetensors_round_trip_is_bit_exact(tmp_path, scan, dtype):
    from safetensors import safe_open

    params = params_of(scan, dtype)
    path = str(tmp_path / "m.safetensors")
    export.save(params, path)
    with safe_open(path, "numpy") as f:
        names = set(f.keys())
    assert ("blocks.attn.qkv.w" if scan else "blocks.1.attn.qkv.w") in names and "embed.w" in names
    for got in (export.load(path), export.load(path, like=jax.eval_shape(lambda: params))):
        assert jax.tree.structure(got) == jax.tree.structure(params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))


def test_a_mismatch_is_one_line_naming_the_tensor(tmp_path):
    params = params_of()
    path = str(tmp_path / "m.safetensors")
    like = jax.eval_shape(lambda: params)
    export.save({k: v for k, v in params.items() if k != "ln_f"}, path)
    with pytest.raises(ValueError, match=r"missing tensor 'ln_f.bias' \(shape \(16,\)\) and 1 more$"):
        export.load(path, like)
    export.save({**params, "extra": {"w": jnp.zeros(3)}}, path)
    with pytest.raises(ValueError, match=r"unexpected tensor 'extra.w' \(shape \(3,\)\)$"):
        export.load(path, like)
    export.save({**params, "ln_f": {"scale": jnp.ones(17), "bias": jnp.zeros(16)}}, path)
    with pytest.raises(ValueError, match=r"tensor 'ln_f.scale': expected shape \(16,\), got \(17,\)$"):
        export.load(path, like)


@pytest.mark.xdist_group("finetune_eight_devices")
def test_safetensors_read_straight_onto_a_sharded_layout(eight_devices):
    r = eight_devices["sharded_load"]
    assert r["exact"] and r["same_shardings"], r
    assert r["fc_shard_shape"] == [2, 16, 64 // 8] and r["fc_shape"] == [2, 16, 64]


def test_exported_stablehlo_function_equals_apply(tmp_path):
    model = TransformerLM(**LM)
    params = params_of()
    x = np.random.default_rng(0).integers(0, 11, (3, 8)).astype(np.int32)
    path = str(tmp_path / "lm.stablehlo")
    export.export_apply(model.apply, params, jax.ShapeDtypeStruct((3, 8), jnp.int32), path, polymorphic_batch=True)
    call = export.load_exported(path)
    want = model.apply(params, {}, x)[0]
    np.testing.assert_allclose(call(params, x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(call(params, x[:1]), want[:1], rtol=1e-6, atol=1e-6)   # any batch size
