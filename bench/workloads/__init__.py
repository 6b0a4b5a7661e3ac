"""The benchmark workloads W1-W5 (and W4L, W4XL: larger transformers; W4LC: context 4096), shared by every implementation.

Each implementation module (``pure_jax``, ``deepcore_impl``, ``flax_linen``, ``flax_nnx``, ``equinox_impl``,
``torch_impl``) defines ``build(workload, cfg, dtype) -> (step, state, batch)`` with
``step(state, batch) -> (state, loss)``, and ``sync(loss)`` (wait for the device, return a float).
``cfg`` is a dict from :data:`CONFIGS` (or :data:`TINY` for tests); ``inputs(workload, cfg)`` gives the
numpy batch every implementation starts from (``numpy.random.default_rng(0)``). W4XL is sized for a GPU.
``dtype`` is the compute dtype ("float32" or "bfloat16"); parameters and optimiser state stay float32.
"""
import numpy as np

ADAM = dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8)
GAN_ADAM = dict(learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8)

CONFIGS = {
    "W1": dict(batch=256, sizes=(784, 512, 512, 10)),
    "W2": dict(batch=128, hw=28, channels=(32, 64, 128), classes=10),
    "W3": dict(batch=64, vocab=96, embed=128, hidden=256, T=64),
    "W4": dict(batch=32, vocab=96, d=256, heads=4, layers=4, T=128),
    "W4L": dict(batch=8, vocab=96, d=512, heads=8, layers=8, T=256),
    "W4XL": dict(batch=32, vocab=96, d=1024, heads=16, layers=8, T=512),  # GPU-sized
    "W4LC": dict(batch=4, vocab=96, d=1024, heads=16, layers=4, T=4096),  # long context, GPU-sized
    "W5": dict(batch=64, z=64, hw=28, g_channels=(128, 64), d_channels=(64, 128)),
}
TINY = {
    "W1": dict(batch=8, sizes=(12, 16, 16, 5)),
    "W2": dict(batch=4, hw=8, channels=(4, 6, 8), classes=5),
    "W3": dict(batch=4, vocab=11, embed=6, hidden=8, T=5),
    "W4": dict(batch=2, vocab=11, d=16, heads=2, layers=2, T=8),
    "W4L": dict(batch=2, vocab=11, d=16, heads=2, layers=2, T=8),
    "W4XL": dict(batch=2, vocab=11, d=16, heads=2, layers=2, T=8),
    "W4LC": dict(batch=2, vocab=11, d=16, heads=2, layers=2, T=16),
    "W5": dict(batch=4, z=8, hw=8, g_channels=(8, 4), d_channels=(4, 8)),
}
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")


def transformer_gflop(c) -> float:
    """Forward matmul FLOPs (x3 for fwd+bwd) of the GPT LM, attention counted as full T x T."""
    d, T = c["d"], c["T"]
    per_token = c["layers"] * (24 * d * d + 4 * T * d) + 2 * d * c["vocab"]
    return 3 * per_token * c["batch"] * T / 1e9


# GFLOP per training step (bench-workloads.md's table; W4L and W4XL by the same rule)
GFLOP = {"W1": 1.03, "W2": 22.4, "W3": 10.3, "W4": 84.4, "W4L": round(transformer_gflop(CONFIGS["W4L"]), 1),
         "W4XL": round(transformer_gflop(CONFIGS["W4XL"]), 1), "W4LC": round(transformer_gflop(CONFIGS["W4LC"]), 1),
         "W5": 11.2}


def inputs(workload: str, cfg: dict) -> dict:
    """The fixed numpy batch of ``workload`` (images NHWC, float32; ids int32)."""
    rng = np.random.default_rng(0)
    b = cfg["batch"]
    if workload == "W1":
        return {"x": rng.normal(size=(b, cfg["sizes"][0])).astype(np.float32),
                "y": rng.integers(0, cfg["sizes"][-1], b).astype(np.int32)}
    if workload == "W2":
        return {"x": rng.normal(size=(b, cfg["hw"], cfg["hw"], 1)).astype(np.float32),
                "y": rng.integers(0, cfg["classes"], b).astype(np.int32)}
    if workload == "W3":
        seq = rng.integers(0, cfg["vocab"], (b, cfg["T"] + 1)).astype(np.int32)
        return {"x": seq[:, :-1].copy(), "y": seq[:, 1:].copy()}
    if workload.startswith("W4"):
        seq = rng.integers(0, cfg["vocab"], (b, cfg["T"] + 1)).astype(np.int32)
        return {"x": seq[:, :-1].copy(), "y": seq[:, 1:].copy()}
    if workload == "W5":
        return {"image": rng.uniform(-1, 1, size=(b, cfg["hw"], cfg["hw"], 1)).astype(np.float32)}
    raise ValueError(f"unknown workload {workload!r}; choose one of {sorted(CONFIGS)}")
