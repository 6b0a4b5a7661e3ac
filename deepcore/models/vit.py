"""Vision transformer (Dosovitskiy et al., 2021): images ``(..., H, W, C)`` -> logits ``(..., num_classes)``.

Non-overlapping ``patch_size`` patches are flattened and projected by one dense layer (the same map as a
conv with kernel = stride = patch), a class token is prepended (``pool="cls"``) or the tokens are averaged
(``pool="mean"``), learned positions are added, then pre-LN blocks, a final LayerNorm and a dense head.

params: ``{"patch": {"w": (p*p*C, D), "b"}, "cls": (1, D), "positions": {"table": (N(+1), D)}, "blocks",
"ln_f", "head": {"w", "b"}}``. For 28x28x1 Fashion-MNIST use ``patch_size`` 4 (49 patches) or 7 (16).
"""
import jax
import jax.numpy as jnp

from deepcore import initializers
from deepcore.core import Layer, ShapeError, cast, compute_dtype_for, layer, output_spec, param_dtype_for
from deepcore.layers.dense import dense
from deepcore.layers.dropout import dropout
from deepcore.layers.norm import init_norm, layer_norm
from deepcore.layers.position import learned_positions
from deepcore.layers.norm import AXES as NORM_AXES
from deepcore.models.transformer_stack import BlockConfig, gpt_init, split_keys, stack_apply, stack_axes, stack_init


def vit_axes(params) -> dict:
    """Logical axis names mirroring a ViT's ``params`` (arrays or shapes)."""
    return {"patch": {"w": ("patch", "embed"), "b": ("embed",)}, "cls": ("cls", "embed"),
            "positions": {"table": ("max_len", "embed")}, "blocks": stack_axes(params["blocks"]), "ln_f": NORM_AXES,
            "head": {"w": ("embed", "classes"), "b": ("classes",)}}


def patchify(x, patch_size: int):
    """``(..., H, W, C) -> (..., (H/p)(W/p), p*p*C)``, patches in row-major order."""
    *lead, h, w, c = x.shape
    p = patch_size
    x = x.reshape(tuple(lead) + (h // p, p, w // p, p, c))
    x = jnp.swapaxes(x, -4, -3)                                    # (..., H/p, W/p, p, p, C)
    return x.reshape(tuple(lead) + ((h // p) * (w // p), p * p * c))


def ViT(num_classes: int, *, patch_size: int = 4, d_model: int = 64, num_layers: int = 4, num_heads: int = 4,
        pool: str = "cls", scan: bool = True, remat=None, w_init=gpt_init, b_init=initializers.zeros,
        param_dtype=None, dtype=None, **options) -> Layer:
    """ViT layer; ``options`` are further :class:`BlockConfig` fields (``mlp_ratio``, ``dropout``,
    ``approximate_gelu`` (default exact here), ``epsilon`` (every LayerNorm's, the final one's too; Hugging Face
    ViTs use 1e-12), ``implementation``, ...). Blocks are non-causal. ``remat``: a
    per-block policy of :mod:`deepcore.layers.remat` (True: ``"nothing"``)."""
    if pool not in ("cls", "mean"):
        raise ValueError(f"vit: pool must be 'cls' or 'mean', got {pool!r}")
    options.setdefault("approximate_gelu", False)
    cfg = BlockConfig(num_heads=num_heads, causal=False, w_init=w_init, b_init=b_init, dtype=dtype, **options)

    def check(shape):
        if len(shape) < 3 or shape[-3] % patch_size or shape[-2] % patch_size:
            raise ShapeError(f"expected images (..., H, W, C) with H and W divisible by patch_size={patch_size}, "
                             f"got {tuple(shape)}")

    def init(key, spec):
        check(spec.shape)
        pdt = param_dtype_for(spec.dtype, param_dtype)
        h, w, c = spec.shape[-3:]
        n = (h // patch_size) * (w // patch_size) + (pool == "cls")
        kp, kc, kpos, kb, kh = jax.random.split(key, 5)
        params = {"patch": {"w": w_init(kp, (patch_size * patch_size * c, d_model), pdt),
                            "b": b_init(kp, (d_model,), pdt)}}
        if pool == "cls":
            params["cls"] = w_init(kc, (1, d_model), pdt)
        params["positions"] = {"table": w_init(kpos, (n, d_model), pdt)}
        params["blocks"] = stack_init(cfg, kb, d_model, num_layers, scan=scan, dtype=pdt)
        params["ln_f"] = init_norm(d_model, pdt)
        params["head"] = {"w": w_init(kh, (d_model, num_classes), pdt), "b": b_init(kh, (num_classes,), pdt)}
        return output_spec(apply, params, {}, spec), params, {}

    def apply(params, state, x, *, key=None, train=False):
        check(x.shape)
        x = x.astype(compute_dtype_for(x.dtype, dtype))
        k_emb, k_blocks = split_keys(key, 2)
        t = dense(params["patch"], patchify(x, patch_size))                           # (..., N, D)
        if pool == "cls":
            cls = cast(params["cls"], t.dtype)
            t = jnp.concatenate([jnp.broadcast_to(cls, t.shape[:-2] + (1, d_model)), t], axis=-2)
        t = dropout(learned_positions(params["positions"], t), cfg.dropout, key=k_emb, train=train)
        t, _ = stack_apply(cfg, params["blocks"], t, key=k_blocks, train=train, remat=remat)
        t = layer_norm(params["ln_f"], t, epsilon=cfg.epsilon)
        return dense(params["head"], t[..., 0, :] if pool == "cls" else jnp.mean(t, axis=-2)), state

    return layer("vit", init, apply, axes=vit_axes)


__all__ = ["ViT", "patchify", "vit_axes"]
